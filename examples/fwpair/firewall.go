package main

import (
	"context"
	"errors"
	"fmt"
	"github.com/gocarp/gocarp/internal/nft"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The firewall ruleset (firewall.ruleset) is an nftables file that owns
// the tables it declares. fwpair applies it as one transaction that first
// deletes those tables, and the tables of the version in force, then
// declares them afresh from the file: applying a file twice replaces its
// tables instead of appending to them, a table dropped from the file
// disappears, and every other table (the forwarding gate's, another
// program's) stays untouched. A "flush ruleset" would remove those too,
// so a ruleset containing one is refused, as is one naming the gate's
// table. The ruleset travels to the subscribers as it is, so it must be
// self-contained: "include" is refused.
//
// Before the transaction, the same script goes through "nft -c": a
// ruleset the kernel would refuse changes nothing, is not published, and
// the previous version stays in force (nft -f is atomic as well; the
// check makes the refusal explicit and keeps it away from the kernel).

// nftTimeout bounds one run of nft on a ruleset.
const nftTimeout = 30 * time.Second

var (
	// tableDecl matches a table declaration at the start of a line:
	// "table inet fw {", "add table ip nat", "table filter" (family ip).
	tableDecl    = regexp.MustCompile(`(?m)^[ \t]*(?:(?:add|create)[ \t]+)?table[ \t]+(?:(ip|ip6|inet|arp|bridge|netdev)[ \t]+)?([A-Za-z_][A-Za-z0-9_./-]*|"[^"\n]*")`)
	flushRuleset = regexp.MustCompile(`(?m)^[ \t]*flush[ \t]+ruleset\b`)
	includeStmt  = regexp.MustCompile(`(?m)^[ \t]*include[ \t]`)
)

// nftTable is one table a ruleset declares.
type nftTable struct{ family, name string }

func (t nftTable) String() string { return t.family + " " + t.name }

// rulesetTables returns the tables rules declares, in order, each once. It
// refuses what fwpair must not apply: "flush ruleset", "include", the
// forwarding gate's table, a ruleset declaring no table.
func rulesetTables(rules []byte) ([]nftTable, error) {
	text := stripComments(string(rules))
	if flushRuleset.MatchString(text) {
		return nil, errors.New(`"flush ruleset" would remove every table, the forwarding gate's and other programs' too: declare your tables, fwpair replaces them (examples/fwpair doc, "Firewall ruleset")`)
	}
	if includeStmt.MatchString(text) {
		return nil, errors.New(`"include" not allowed: the ruleset is applied on the peer too and must be self-contained`)
	}
	var out []nftTable
	for _, m := range tableDecl.FindAllStringSubmatch(text, -1) {
		t := nftTable{family: m[1], name: m[2]}
		if t.family == "" {
			t.family = "ip"
		}
		if strings.Trim(t.name, `"`) == gateTable {
			return nil, fmt.Errorf("table %s is fwpair's forwarding gate; use another name", t)
		}
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("declares no table")
	}
	return out, nil
}

// stripComments blanks nftables comments (from '#' to the end of the line,
// outside double quotes), so that a commented-out "flush ruleset" is not
// refused and a commented-out table is not deleted.
func stripComments(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	inQuote, inComment := false, false
	for _, r := range s {
		switch {
		case r == '\n':
			inQuote, inComment = false, false
		case inComment:
			continue
		case r == '"':
			inQuote = !inQuote
		case r == '#' && !inQuote:
			inComment = true
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// rulesetScript returns the transaction that replaces the tables of prev
// (the version in force, nil if none) with rules: each table of either is
// declared (so that deleting it cannot fail) and deleted, then rules
// follows unchanged.
func rulesetScript(rules, prev []byte) (string, error) {
	tables, err := rulesetTables(rules)
	if err != nil {
		return "", err
	}
	if prev != nil {
		if old, err := rulesetTables(prev); err == nil {
			for _, t := range old {
				if !slices.Contains(tables, t) {
					tables = append(tables, t)
				}
			}
		}
	}
	// One line, so that nft's line numbers are the file's plus one
	// (nftError takes it off).
	var b strings.Builder
	for _, t := range tables {
		fmt.Fprintf(&b, "table %s; delete table %s; ", t, t)
	}
	b.WriteString("\n")
	b.Write(rules)
	if len(rules) > 0 && rules[len(rules)-1] != '\n' {
		b.WriteByte('\n')
	}
	return b.String(), nil
}

// nftRunner runs nft on a script: checkOnly runs "nft -c". A field of the
// documents, so that unit tests need no nft.
type nftRunner func(ctx context.Context, checkOnly bool, script string) error

// execNft returns the nftRunner of the nft binary at path.
func execNft(path string) nftRunner {
	return func(ctx context.Context, checkOnly bool, script string) error {
		if checkOnly {
			return nft.Check(ctx, path, script)
		}
		return nft.Run(ctx, path, script)
	}
}

// applyRuleset checks rules with nft -c and, if the kernel accepts it,
// applies it in one transaction replacing the tables of prev. On error
// nothing changed.
func applyRuleset(nft nftRunner, rules, prev []byte) error {
	script, err := rulesetScript(rules, prev)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), nftTimeout)
	defer cancel()
	if err := nft(ctx, true, script); err != nil {
		return nftError(err)
	}
	return nftError(nft(ctx, false, script))
}

// stdinLine is where nft's messages point into the script.
var stdinLine = regexp.MustCompile(`/dev/stdin:(\d+):`)

// nftError rewrites the positions in nft's message from the script's
// lines to the ruleset file's.
func nftError(err error) error {
	if err == nil {
		return nil
	}
	msg := stdinLine.ReplaceAllStringFunc(err.Error(), func(m string) string {
		n, _ := strconv.Atoi(stdinLine.FindStringSubmatch(m)[1])
		if n <= 1 {
			return "fwpair's preamble:"
		}
		return fmt.Sprintf("line %d:", n-1)
	})
	return errors.New(msg)
}

// checkRuleset is applyRuleset's check alone (-check).
func checkRuleset(nft nftRunner, rules []byte) error {
	return checkRulesetOver(nft, rules, nil)
}

// checkRulesetOver is applyRuleset's check alone, replacing prev.
func checkRulesetOver(nft nftRunner, rules, prev []byte) error {
	script, err := rulesetScript(rules, prev)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), nftTimeout)
	defer cancel()
	return nftError(nft(ctx, true, script))
}
