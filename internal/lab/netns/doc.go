// Package netns is a test lab, not part of the library: it builds throw-away
// network topologies out of Linux network namespaces for integration tests
// (and the measuring tools under internal/measure) that need real sockets,
// real bridges and real peer daemons (ucarp, keepalived, conntrackd, tcpdump,
// tshark). It takes a testing.TB and reports failures through it.
//
// Everything lives in namespaces the test creates; the root namespace is
// never touched (no bridge, no veth, no sysctl there). A topology has:
//
//   - one "switch" namespace holding Linux bridges (the LAN segments), with
//     br_netfilter switched off so bridged frames never hit the host's
//     firewall rules (docs/interop.md, "br_netfilter");
//   - any number of node namespaces, each with loopback up and explicit
//     sysctls (rp_filter 0, accept_dad 0, arp_ignore 1, arp_announce 2,
//     send_redirects 0) so the CI host's defaults cannot make a test pass or
//     fail by accident (docs/interop.md, "Host sysctls");
//   - veth pairs from a node into a bridge (Topology.Attach) and
//     point-to-point veths between two nodes (Topology.Link), created
//     directly inside their namespaces.
//
// Names are unique per test and process: a namespace is called
// "<tag>-<pid>-<hash of t.Name()>-<node>", so parallel test binaries of
// different packages never collide. Interface names stay short (at most 15
// bytes, the kernel limit) because they only have to be unique inside one
// namespace.
//
// Everything is removed in t.Cleanup, even when the test fails: background
// processes are killed with SIGKILL (the whole process group) and reaped,
// then the namespaces are deleted, which takes their veths and bridges with
// them.
//
// Go code runs inside a namespace through NS.Do: the function executes on a
// dedicated, locked OS thread that has joined the namespace and is thrown
// away afterwards (the goroutine exits without unlocking, so the runtime
// kills the thread). Sockets and netlink connections opened inside Do stay in
// that namespace for their lifetime, so a transport or link watcher built in
// Do can be used from any goroutine afterwards. Goroutines started from
// inside fn do not inherit the namespace.
//
// A typical test:
//
//	tp := netns.New(t, "vip")                       // skips unless root
//	lan := tp.Bridge("lan")
//	fw1, fw2 := tp.Node("fw1"), tp.Node("fw2")
//	port1 := tp.Attach(fw1, lan, "eth0", netip.MustParsePrefix("10.1.0.1/24"))
//	tp.Attach(fw2, lan, "eth0", netip.MustParsePrefix("10.1.0.2/24"))
//	tp.Link(fw1, "sync0", nil, fw2, "sync0", nil)   // dedicated sync link
//
//	uc := fw2.Start("ucarp", "-i", "eth0", ...)     // killed in t.Cleanup
//	line, _, err := uc.WaitLine(0, "Switching to state: MASTER", 15*time.Second)
//
//	err = fw1.Do(func() error { tr, err = carp.NewRawTransport("eth0", nil); return err })
//	tp.Switch().SetLink(port1, false)               // cut fw1's carrier
//	c := tp.Switch().StartCapture(lan, 10, "ip proto 112")  // tcpdump -c 10
//	err = c.Wait(10 * time.Second)                  // then tshark -r c.Path
//
// Attach and Link return only when the interfaces are running and have
// their IPv6 link-local address (WaitReady), so sockets opened right after
// work. Process.WaitLine, Capture.Wait and friends wait for events with a
// timeout that only catches hangs; nothing here sleeps to synchronise.
// EnableQuerier turns on the bridge's IGMP/MLD querier for multicast
// snooping tests.
//
// The tests of this package and of its users need root. Require skips a test
// when not root, except under CI (CI=true), where it fails, because CI
// installs every tool and runs as root; RequireBinary does the same for
// missing programs.
package netns
