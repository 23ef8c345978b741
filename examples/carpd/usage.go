package main

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
)

// helpWidth is where carpd's help wraps its flag descriptions.
const helpWidth = 79

// writeFlagHelp writes one entry per flag: the names in a column as wide as
// the longest, the description beside them, wrapped at helpWidth with its
// continuation lines in the same column.
func writeFlagHelp(w io.Writer, flags []flagSpec) {
	names := make([]string, len(flags))
	col := 0
	for i, f := range flags {
		names[i] = "    --" + f.long
		if f.short != 0 {
			names[i] = fmt.Sprintf("-%c, --%s", f.short, f.long)
		}
		if f.arg != "" {
			names[i] += " " + f.arg
		}
		col = max(col, len(names[i]))
	}
	indent := strings.Repeat(" ", 2+col+2)
	for i, f := range flags {
		lines := wrap(f.help, max(helpWidth-len(indent), 20))
		fmt.Fprintf(w, "  %-*s  %s\n", col, names[i], lines[0])
		for _, l := range lines[1:] {
			fmt.Fprintf(w, "%s%s\n", indent, l)
		}
	}
}

// wrap splits s into lines of at most width bytes at spaces (a longer word
// gets a line of its own).
func wrap(s string, width int) []string {
	var lines []string
	line := ""
	for _, word := range strings.Fields(s) {
		switch {
		case line == "":
			line = word
		case len(line)+1+len(word) <= width:
			line += " " + word
		default:
			lines = append(lines, line)
			line = word
		}
	}
	return append(lines, line)
}

// parseAddr parses an address flag's value, saying so when it does not
// parse at all (rather than that it is not unicast).
func parseAddr(v string) (netip.Addr, error) {
	a, err := netip.ParseAddr(v)
	if err != nil {
		var detail string
		if _, rest, ok := strings.Cut(err.Error(), "): "); ok {
			detail = " (" + rest + ")"
		}
		return netip.Addr{}, errors.New("does not parse as an IPv4 or IPv6 address" + detail)
	}
	return a, nil
}
