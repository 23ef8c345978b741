package main

import (
	"flag"
	"fmt"
	"io"
)

// writeUsage is -h: what fwpair does, where its documentation is, the
// flags.
func writeUsage(w io.Writer, fl *flag.FlagSet) {
	fmt.Fprint(w, `Usage: fwpair [-config FILE] [-check | -status | -reload | -maintenance on|off | -genkey FILE] [-log-format text|json]

fwpair runs one node of a Linux HA firewall pair: CARP groups for the
virtual addresses, failing over together, and conntrack state replicated to
the peer (pfsync-style, sealed), so flows survive a failover. The primary
can publish its nftables ruleset and other files to the secondary, which
applies each version atomically ("firewall" and "files" sections).

SIGHUP (or -reload) applies an edited configuration live; -maintenance on
hands every group to the peer until -maintenance off, across restarts.

Documentation (configuration keys, reloading, health checks, signals,
systemd, firewall rules):
  go doc ./examples/fwpair   (in the gocarp source tree)
  https://pkg.go.dev/github.com/gocarp/gocarp/examples/fwpair
An example configuration is fwpair.example.json next to the source.

Flags:
`)
	out := fl.Output()
	fl.SetOutput(w)
	fl.PrintDefaults()
	fl.SetOutput(out)
}
