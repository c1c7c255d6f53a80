package run

import (
	"fmt"
	"log/slog"
	"maps"
	"net/url"
	"slices"

	"github.com/scailabs/scaivault-run/fetch"
	"github.com/scailabs/scaivault-run/mask"
	"github.com/scailabs/scaivault-run/template"
)

// conceal makes set's current values every value the child is given
// (--mask): each variable's value that came from a reference (the file's
// content for as=file; each value of a whole secret injected as JSON too),
// named by the variable, and every value the templates read, named by its
// reference (`scaivault://app/db#password`). It runs before the child that
// sees them starts, at start and on every change, each time with all the
// values of the run (vars, out and snap whole, not what changed): the
// values of before are superseded, still concealed while the set has room
// for them (mask.Set.Update). Superseded values dropped for room are
// logged by name.
func conceal(set *mask.Set, log *slog.Logger, vars []template.EnvVar, out []template.Rendered, snap *fetch.Snapshot) {
	var vals []mask.Value
	for _, v := range vars {
		if v.Ref == nil {
			continue
		}
		val := v.Value
		if v.Ref.AsFile {
			var err error
			if val, err = snap.Value(*v.Ref); err != nil {
				continue // not resolved: nothing injected
			}
		}
		vals = append(vals, mask.Value{Name: v.Name, Value: []byte(val)})
		if v.Ref.Key == "" {
			for _, d := range sourceValues(snap, v.Ref.Source()) {
				vals = append(vals, mask.Value{Name: v.Name, Value: d.Value})
			}
		}
	}
	for _, o := range out {
		for _, src := range o.Used {
			vals = append(vals, sourceValues(snap, src)...)
		}
	}
	if dropped := set.Update(vals...); len(dropped) > 0 {
		log.Warn("--mask: values superseded by earlier changes are no longer concealed, to keep the set of values to conceal within its bound",
			"names", dropped, "bound_bytes", mask.MaxTotal)
	}
}

// sourceValues are the values of one source a template may read, named by
// their references: each key of a secret or lease, a certificate's
// certificate, key, chain and serial. Lists hold names, not values.
func sourceValues(snap *fetch.Snapshot, src fetch.Source) []mask.Value {
	if snap == nil {
		return nil
	}
	var out []mask.Value
	keyed := func(ref string, r fetch.Ref, keys []string) {
		for _, k := range keys {
			r.Key = k
			if v, err := snap.Value(r); err == nil {
				out = append(out, mask.Value{Name: ref + "#" + url.PathEscape(k), Value: []byte(v)})
			}
		}
	}
	switch src.Kind {
	case fetch.Static:
		if sec := snap.Secrets[src]; sec != nil {
			ref := "scaivault://" + src.Path
			if src.Version > 0 {
				ref += fmt.Sprintf("?version=%d", src.Version)
			}
			keyed(ref, fetch.Ref{Kind: fetch.Static, Path: src.Path, Version: src.Version}, slices.Sorted(maps.Keys(sec.Data)))
		}
	case fetch.Dynamic:
		if l := snap.Leases[src]; l != nil {
			ref := "scaivault+dynamic://" + src.Engine + "/" + src.Role
			if src.TTL != "" {
				ref += "?ttl=" + src.TTL
			}
			keyed(ref, fetch.Ref{Kind: fetch.Dynamic, Engine: src.Engine, Role: src.Role, TTL: src.TTL}, slices.Sorted(maps.Keys(l.Data)))
		}
	case fetch.PKI, fetch.ACME:
		if c := snap.Certs[src]; c != nil {
			ref := "scaivault+pki://" + src.PKIRole + "?" + src.Params
			if src.Kind == fetch.ACME {
				ref = "scaivault+acme://" + src.Account + "?" + src.Params
			}
			for _, f := range []struct{ field, v string }{
				{fetch.FieldCertificate, c.CertificatePEM},
				{fetch.FieldPrivateKey, c.PrivateKeyPEM},
				{fetch.FieldCAChain, fetch.PEMBundle(c.CAChain)},
				{fetch.FieldSerialNumber, c.SerialNumber},
			} {
				out = append(out, mask.Value{Name: ref + "#" + f.field, Value: []byte(f.v)})
			}
		}
	}
	return out
}
