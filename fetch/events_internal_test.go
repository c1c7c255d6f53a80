package fetch

import (
	"bufio"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
)

func parseAll(t *testing.T, stream string) (evs []sseEvent, lines int, lastID string, err error) {
	t.Helper()
	rd := &sseReader{r: bufio.NewReaderSize(strings.NewReader(stream), 16), onLine: func() { lines++ }}
	for {
		ev, err := rd.next()
		if err != nil {
			return evs, lines, rd.lastID, err
		}
		evs = append(evs, ev)
	}
}

func TestSSEReader(t *testing.T) {
	tests := []struct {
		name   string
		stream string
		want   []sseEvent
		lastID string
	}{
		{
			name:   "one event",
			stream: "event: secret.updated\nid: 7\ndata: {\"path\":\"app/db\",\"version\":4}\n\n",
			want:   []sseEvent{{typ: "secret.updated", id: "7", data: `{"path":"app/db","version":4}`}},
			lastID: "7",
		},
		{
			name:   "multi-line data, CRLF, comments, no space after colon",
			stream: ": keep-alive\r\nevent:secret.rotated\r\ndata: {\"path\":\r\n: inside\r\ndata:\"a\"}\r\nid:c2\r\n\r\n",
			want:   []sseEvent{{typ: "secret.rotated", id: "c2", data: "{\"path\":\n\"a\"}"}},
			lastID: "c2",
		},
		{
			name:   "default type, id kept across events, only one leading space stripped",
			stream: "id: 1\ndata:  x\n\ndata: y\n\n",
			want:   []sseEvent{{typ: "message", id: "1", data: " x"}, {typ: "message", id: "1", data: "y"}},
			lastID: "1",
		},
		{
			name:   "no data: not dispatched, but the id counts; type resets",
			stream: "event: secret.deleted\nid: 5\n\ndata: z\n\n",
			want:   []sseEvent{{typ: "message", id: "5", data: "z"}},
			lastID: "5",
		},
		{
			name:   "id with NUL ignored, unknown fields ignored",
			stream: "id: 9\nretry: 100\nfoo: bar\nid: a\x00b\ndata: d\n\n",
			want:   []sseEvent{{typ: "message", id: "9", data: "d"}},
			lastID: "9",
		},
		{
			name:   "unfinished event at EOF is dropped",
			stream: "data: a\n\nid: 3\ndata: b\n",
			want:   []sseEvent{{typ: "message", data: "a"}},
			lastID: "3",
		},
		{
			name:   "empty data line dispatches an empty event",
			stream: "event: ping\ndata\n\n",
			want:   []sseEvent{{typ: "ping"}},
		},
		{
			name:   "long line beyond the buffer",
			stream: "data: " + strings.Repeat("x", 100) + "\n\n",
			want:   []sseEvent{{typ: "message", data: strings.Repeat("x", 100)}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _, lastID, err := parseAll(t, tt.stream)
			if !errors.Is(err, io.EOF) {
				t.Fatalf("err = %v, want EOF", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("events = %q\nwant     %q", got, tt.want)
			}
			if lastID != tt.lastID {
				t.Errorf("last id = %q, want %q", lastID, tt.lastID)
			}
		})
	}
}

func TestSSEReaderCountsEveryLine(t *testing.T) {
	_, lines, _, _ := parseAll(t, ":a\n:b\n\nevent: x\n")
	if lines != 4 {
		t.Errorf("onLine called %d times, want 4 (comments and blank lines count)", lines)
	}
}

func TestPermanentEventsError(t *testing.T) {
	api := func(s int) error { return &APIError{StatusCode: s} }
	for s, want := range map[int]bool{400: true, 401: true, 403: true, 404: true, 429: false, 500: false, 503: false} {
		got := permanentEventsError(api(s)) != nil
		if got != want {
			t.Errorf("status %d: permanent = %v, want %v", s, got, want)
		}
	}
	if err := permanentEventsError(api(404)); !errors.Is(err, ErrEventsNotSupported) || !errors.Is(err, ErrNotFound) {
		t.Errorf("404 gives %v", err)
	}
	if permanentEventsError(errors.New("events stream ended")) != nil {
		t.Error("a dropped stream is not permanent")
	}
}
