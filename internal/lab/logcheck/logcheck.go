// Package logcheck checks the project's logging convention in tests: no
// log record may carry the same key twice. The library adds the
// attributes only it knows (a Group its vhid, a transport its iface) and
// an embedder passes a logger without them; when both add one, a line
// reads "vhid=1 ... vhid=1". Handler catches that in process, and
// DuplicateKeys in the text output of a daemon.
package logcheck

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Handler is a slog.Handler that keeps, for every record, the keys it
// carries (those added with With included) and reports the records that
// repeat one. It accepts every level, Debug included. The zero value is
// not usable: use New.
type Handler struct {
	keys   []string // from WithAttrs, with their group prefix
	prefix string   // the open groups, "a.b."
	s      *state
}

type state struct {
	mu      sync.Mutex
	records int
	dups    []string
}

// New returns an empty Handler.
func New() *Handler { return &Handler{s: &state{}} }

// Logger returns a logger writing to h.
func (h *Handler) Logger() *slog.Logger { return slog.New(h) }

// Enabled implements slog.Handler: every level is checked.
func (h *Handler) Enabled(context.Context, slog.Level) bool { return true }

// Handle implements slog.Handler.
func (h *Handler) Handle(_ context.Context, r slog.Record) error {
	keys := slices.Clone(h.keys)
	r.Attrs(func(a slog.Attr) bool {
		keys = appendKeys(keys, h.prefix, a)
		return true
	})
	h.s.mu.Lock()
	defer h.s.mu.Unlock()
	h.s.records++
	if d := repeated(keys); len(d) > 0 {
		h.s.dups = append(h.s.dups, fmt.Sprintf("%q repeats %s (keys %s)", r.Message, strings.Join(d, ", "), strings.Join(keys, " ")))
	}
	return nil
}

// WithAttrs implements slog.Handler.
func (h *Handler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.keys = slices.Clone(h.keys)
	for _, a := range as {
		c.keys = appendKeys(c.keys, h.prefix, a)
	}
	return &c
}

// WithGroup implements slog.Handler.
func (h *Handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	c := *h
	c.prefix = h.prefix + name + "."
	return &c
}

// Records returns how many records were handled.
func (h *Handler) Records() int {
	h.s.mu.Lock()
	defer h.s.mu.Unlock()
	return h.s.records
}

// Duplicates describes every record that repeated a key, in order.
func (h *Handler) Duplicates() []string {
	h.s.mu.Lock()
	defer h.s.mu.Unlock()
	return slices.Clone(h.s.dups)
}

// appendKeys appends the key of a, or of each member of a group, as the
// text and JSON handlers would write them.
func appendKeys(keys []string, prefix string, a slog.Attr) []string {
	v := a.Value.Resolve()
	if v.Kind() != slog.KindGroup {
		if a.Key == "" {
			return keys // ignored by the handlers
		}
		return append(keys, prefix+a.Key)
	}
	p := prefix
	if a.Key != "" {
		p += a.Key + "."
	}
	for _, m := range v.Group() {
		keys = appendKeys(keys, p, m)
	}
	return keys
}

// repeated returns the keys that occur more than once, each once.
func repeated(keys []string) []string {
	seen := map[string]int{}
	var out []string
	for _, k := range keys {
		seen[k]++
		if seen[k] == 2 {
			out = append(out, k)
		}
	}
	return out
}

// DuplicateKeys returns the keys that occur more than once in one line of
// slog.TextHandler output ("time=... level=INFO msg=... k=v k2=\"v w\""),
// each once, or nil. A line that is not such output has no keys.
func DuplicateKeys(line string) []string {
	return repeated(TextKeys(line))
}

// TextKeys returns the keys of one line of slog.TextHandler output, in
// order. Quoted values (strconv quoting, as the handler writes them) may
// contain spaces and '='.
func TextKeys(line string) []string {
	var keys []string
	for s := strings.TrimSpace(line); s != ""; s = strings.TrimLeft(s, " ") {
		eq := strings.IndexByte(s, '=')
		sp := strings.IndexByte(s, ' ')
		if eq <= 0 || (sp >= 0 && sp < eq) {
			return keys // not key=value: stop at what cannot be parsed
		}
		keys = append(keys, s[:eq])
		s = s[eq+1:]
		if strings.HasPrefix(s, `"`) {
			q, err := strconv.QuotedPrefix(s)
			if err != nil {
				return keys
			}
			s = s[len(q):]
			continue
		}
		if sp := strings.IndexByte(s, ' '); sp >= 0 {
			s = s[sp:]
		} else {
			s = ""
		}
	}
	return keys
}
