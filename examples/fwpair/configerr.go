package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
)

// keyRanges are the allowed values of the numeric keys whose range is
// narrower than their Go type's, by the key's last element, as the
// validation after decoding states them.
var keyRanges = map[string]string{
	"vhid":     "1-255",
	"advbase":  "1-255",
	"advskew":  "0-254",
	"priority": "1-254",
	"node":     "1-4294967295",
}

// decodeError turns the JSON decoder's errors about one value (a number
// outside its type, a string where a number goes, an address that does not
// parse) into fwpair's "key, value, allowed range" form. Other errors
// (syntax, unknown keys) are returned as they are.
func decodeError(data []byte, err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		value := strings.TrimPrefix(te.Value, "number ")
		if te.Offset > 0 && te.Offset <= int64(len(data)) {
			value = lastToken(data[:te.Offset], value)
		}
		field := te.Field
		if p := pathAt(data, te.Offset); p != "" {
			field = p
		}
		return rangeErr(field, value, allowedFor(te.Field, te.Type))
	}
	msg := err.Error()
	for _, kind := range []struct{ fn, allowed string }{
		{"ParseAddr(", "(an IPv4 or IPv6 address)"},
		{"ParsePrefix(", "(an address/prefix length, e.g. 10.0.0.0/8)"},
	} {
		i := strings.Index(msg, kind.fn)
		if i < 0 {
			continue
		}
		v, rest, ok := cutQuoted(msg[i+len(kind.fn):])
		if !ok {
			break
		}
		var tree any
		if json.Unmarshal(data, &tree) != nil {
			break
		}
		if path := findString(tree, v, ""); path != "" { // the value's first use
			return fmt.Errorf("%s %q out of range %s: %s", path, v, kind.allowed, strings.TrimPrefix(rest, "): "))
		}
	}
	return fmt.Errorf("decoding: %w", err)
}

// allowedFor is the allowed range of a key decoded into type t.
func allowedFor(field string, t reflect.Type) string {
	if r, ok := keyRanges[field[strings.LastIndex(field, ".")+1:]]; ok {
		return r
	}
	switch t.Kind() {
	case reflect.Uint8:
		return "0-255"
	case reflect.Uint16:
		return "0-65535"
	case reflect.Uint32:
		return "0-4294967295"
	case reflect.Int, reflect.Int64:
		return "(an integer)"
	case reflect.Bool:
		return "(true or false)"
	case reflect.String:
		return "(a string)"
	}
	return "(a " + t.String() + ")"
}

// lastToken returns the JSON value that ends data (the decoder's offset is
// just past it), or fallback.
func lastToken(data []byte, fallback string) string {
	s := strings.TrimRight(string(data), " \t\r\n")
	i := strings.LastIndexAny(s, ":[,") + 1
	if v := strings.TrimSpace(s[i:]); v != "" {
		return v
	}
	return fallback
}

// cutQuoted reads the Go-quoted string at the start of s.
func cutQuoted(s string) (value, rest string, ok bool) {
	q, err := strconv.QuotedPrefix(s)
	if err != nil {
		return "", "", false
	}
	v, err := strconv.Unquote(q)
	return v, s[len(q):], err == nil
}

// findString returns the key path ("groups[1].addresses[0]", as the
// validation names keys) of a string equal to v in a decoded JSON tree.
func findString(tree any, v, path string) string {
	switch n := tree.(type) {
	case string:
		if n == v {
			return path
		}
	case []any:
		for i, e := range n {
			if p := findString(e, v, fmt.Sprintf("%s[%d]", path, i)); p != "" {
				return p
			}
		}
	case map[string]any:
		for k, e := range n {
			key := k
			if path != "" {
				key = path + "." + k
			}
			if p := findString(e, v, key); p != "" {
				return p
			}
		}
	}
	return ""
}

// pathAt returns the key path ("groups[1].vhid") of the value that ends
// at or after offset off of data, or "" if data does not tokenize that far.
func pathAt(data []byte, off int64) string {
	type frame struct {
		obj       bool
		key       string
		idx       int
		expectKey bool
	}
	var stack []*frame
	afterValue := func() {
		if len(stack) == 0 {
			return
		}
		if top := stack[len(stack)-1]; top.obj {
			top.expectKey = true
		} else {
			top.idx++
		}
	}
	render := func() string {
		var b strings.Builder
		for _, f := range stack {
			if f.obj {
				if b.Len() > 0 {
					b.WriteByte('.')
				}
				b.WriteString(f.key)
			} else {
				fmt.Fprintf(&b, "[%d]", f.idx)
			}
		}
		return b.String()
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	for {
		tok, err := dec.Token()
		if err != nil {
			return ""
		}
		if d, ok := tok.(json.Delim); ok {
			switch d {
			case '{':
				stack = append(stack, &frame{obj: true, expectKey: true})
			case '[':
				stack = append(stack, &frame{})
			default:
				stack = stack[:len(stack)-1]
				afterValue()
			}
			continue
		}
		if len(stack) > 0 {
			if top := stack[len(stack)-1]; top.obj && top.expectKey {
				top.key, _ = tok.(string)
				top.expectKey = false
				continue
			}
		}
		if dec.InputOffset() >= off {
			return render()
		}
		afterValue()
	}
}
