package devserver

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/scailabs/scaivault-run/fetch"
)

// Admin changes a ScaiVault (this dev server, in tests) over the HTTP API
// as an operator would: writes, metadata patches, deletes and rotations.
// scaivault-run itself never does any of it, so the product's client
// (fetch) has none of it; the tests, the dev server's scripts and the
// benchmarks use this instead. It is deliberately small: one attempt per
// call, no retries, the root token (or any token) as given.
type Admin struct {
	BaseURL string
	Token   string
	HTTP    *http.Client // nil: http.DefaultClient
}

// maxAdminAnswer bounds what an Admin call reads of an answer.
const maxAdminAnswer = 8 << 20

// Write writes a new version of the secret at path (with req.CAS only if
// the current version matches).
func (a *Admin) Write(ctx context.Context, path string, req fetch.WriteRequest) (*fetch.WriteResult, error) {
	if req.Data == nil {
		req.Data = map[string]any{}
	}
	var out fetch.WriteResult
	if err := a.do(ctx, http.MethodPut, "/v1/secrets/"+fetch.EscapePath(path), req, &out); err != nil {
		return nil, fmt.Errorf("write secret %q: %w", path, err)
	}
	return &out, nil
}

// PatchMetadata merges metadata into the secret's (RFC 7396) without a new
// version, and returns the secret without data.
func (a *Admin) PatchMetadata(ctx context.Context, path string, metadata map[string]any) (*fetch.Secret, error) {
	if metadata == nil {
		metadata = map[string]any{}
	}
	var out fetch.Secret
	body := fetch.MetadataPatch{Metadata: metadata}
	if err := a.do(ctx, http.MethodPatch, "/v1/secrets/"+fetch.EscapePath(path)+"/metadata", body, &out); err != nil {
		return nil, fmt.Errorf("patch metadata of secret %q: %w", path, err)
	}
	return &out, nil
}

// Delete soft-deletes the secret at path, or with permanent removes all
// its versions.
func (a *Admin) Delete(ctx context.Context, path string, permanent bool) error {
	op, route := fmt.Sprintf("delete secret %q", path), "/v1/secrets/"+fetch.EscapePath(path)
	if permanent {
		op, route = op+" permanently", route+"?permanent=true"
	}
	if err := a.do(ctx, http.MethodDelete, route, nil, nil); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return nil
}

// Rotate makes a new version of the secret (req.NewValue, or a generated
// one) and returns it.
func (a *Admin) Rotate(ctx context.Context, path string, req fetch.RotateRequest) (*fetch.Secret, error) {
	var out fetch.Secret
	if err := a.do(ctx, http.MethodPost, "/v1/secrets/"+fetch.EscapePath(path)+"/rotate", req, &out); err != nil {
		return nil, fmt.Errorf("rotate secret %q: %w", path, err)
	}
	return &out, nil
}

// RotationDue lists the secrets whose rotation is due within withinHours;
// 0 leaves the window to the server.
func (a *Admin) RotationDue(ctx context.Context, withinHours int) ([]fetch.DueEntry, error) {
	route := "/v1/rotation/due"
	if withinHours > 0 {
		route += "?within_hours=" + strconv.Itoa(withinHours)
	}
	var out fetch.DueList
	if err := a.do(ctx, http.MethodGet, route, nil, &out); err != nil {
		return nil, fmt.Errorf("list secrets due for rotation: %w", err)
	}
	return out.Data, nil
}

// do sends one request; a non-2xx answer is a *fetch.APIError (so that
// errors.Is(err, fetch.ErrConflict) and friends work).
func (a *Admin) do(ctx context.Context, method, route string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	u, err := url.Parse(strings.TrimRight(a.BaseURL, "/") + route)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+a.Token)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	hc := a.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAdminAnswer))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		e := &fetch.APIError{StatusCode: resp.StatusCode, RequestID: resp.Header.Get("X-Request-Id")}
		var eb fetch.ErrorBody
		if json.Unmarshal(data, &eb) == nil {
			e.Code, e.Message, e.Details = eb.Error.Code, eb.Error.Message, eb.Error.Details
		}
		return e
	}
	if out == nil || len(data) == 0 {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("decode answer: %v", err)
	}
	return nil
}
