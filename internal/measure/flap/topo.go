//go:build linux

package main

import (
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// topology is the namespaces of one run: "sw" with bridge br0, and nodes
// a and b, each attached to br0 by a veth (eth0 inside, a port in sw).
type topology struct {
	prefix string
	made   []string
}

var nodeAddrs = map[string]string{"a": "10.98.0.1/24", "b": "10.98.0.2/24"}

func newTopology(prefix string) (*topology, error) {
	tp := &topology{prefix: prefix}
	fail := func(err error) (*topology, error) {
		tp.close()
		return nil, err
	}
	for _, n := range []string{"sw", "a", "b"} {
		if err := tp.ip("", "netns", "add", tp.ns(n)); err != nil {
			return fail(err)
		}
		tp.made = append(tp.made, tp.ns(n))
		if err := tp.ip(n, "link", "set", "lo", "up"); err != nil {
			return fail(err)
		}
	}
	steps := [][]string{
		{"sw", "link", "add", "br0", "type", "bridge", "stp_state", "0"},
		{"sw", "link", "set", "br0", "up"},
	}
	for _, n := range []string{"a", "b"} {
		port := n + "-p"
		steps = append(steps,
			[]string{"", "link", "add", "eth0", "netns", tp.ns(n), "type", "veth", "peer", "name", port, "netns", tp.ns("sw")},
			[]string{"sw", "link", "set", port, "master", "br0"},
			[]string{"sw", "link", "set", port, "up"},
			[]string{n, "addr", "add", nodeAddrs[n], "dev", "eth0"},
			[]string{n, "link", "set", "eth0", "up"},
		)
	}
	for _, s := range steps {
		if err := tp.ip(s[0], s[1:]...); err != nil {
			return fail(err)
		}
	}
	// Carrier on every veth (linkwatch delays it).
	deadline := time.Now().Add(10 * time.Second)
	for _, n := range []string{"a", "b"} {
		for {
			out, _ := exec.Command("ip", "-n", tp.ns(n), "-o", "link", "show", "eth0").Output()
			if strings.Contains(string(out), "LOWER_UP") {
				break
			}
			if time.Now().After(deadline) {
				return fail(fmt.Errorf("no carrier on %s eth0", n))
			}
			time.Sleep(20 * time.Millisecond) // polling the kernel: no event to wait on here
		}
	}
	return tp, nil
}

func (tp *topology) ns(n string) string { return tp.prefix + n }

// ip runs ip(8), in namespace n unless n is empty.
func (tp *topology) ip(n string, args ...string) error {
	if n != "" {
		args = append([]string{"-n", tp.ns(n)}, args...)
	}
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

// dropRandom drops percent % of the CARP packets (IP protocol 112)
// arriving in namespace n, each at random.
func (tp *topology) dropRandom(n string, percent int) error {
	rules := "table inet flap {\n chain in {\n  type filter hook input priority 0; policy accept;\n" +
		"  ip protocol 112 numgen random mod 100 < " + strconv.Itoa(percent) + " counter drop\n }\n}\n"
	cmd := exec.Command("ip", "netns", "exec", tp.ns(n), "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("nft in %s: %v: %s", n, err, out)
	}
	return nil
}

// close deletes the namespaces (and with them the veths, the bridge and
// the nftables tables).
func (tp *topology) close() {
	for i := len(tp.made) - 1; i >= 0; i-- {
		exec.Command("ip", "netns", "del", tp.made[i]).Run()
	}
	tp.made = nil
}
