package metrics_test

import (
	"net/netip"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gocarp/gocarp/carp"
	"github.com/gocarp/gocarp/carp/carptest"
	"github.com/gocarp/gocarp/metrics"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

var vips = []netip.Addr{netip.MustParseAddr("10.0.0.254")}

// newGroup builds a group on seg; Close runs at cleanup.
func newGroup(t *testing.T, seg *carptest.Segment, cfg carp.Config) (*carp.Group, *carptest.Port) {
	t.Helper()
	port := seg.Join(carp.IPv4)
	cfg.Addrs, cfg.Password, cfg.Transport = vips, []byte("secret"), port
	g, err := carp.NewGroup(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g, port
}

// compare checks the collector's output for the named metrics against
// want, in the text exposition format.
func compare(t *testing.T, c prometheus.Collector, want string, names ...string) {
	t.Helper()
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}
}

// TestGroup drives two groups through a takeover (the master closes and
// bows out) and reads the backup's collector before and after.
func TestGroup(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		seg := carptest.NewSegment(1)
		a, _ := newGroup(t, seg, carp.Config{VHID: 3, StartAsMaster: true})
		b, port := newGroup(t, seg, carp.Config{VHID: 3, AdvSkew: 100})
		c := metrics.NewGroup(b)
		for _, g := range []*carp.Group{a, b} {
			if err := g.Start(); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(5 * time.Second)
		synctest.Wait()
		compare(t, c, `
# HELP gocarp_carp_state 1 for the state the group is in (init, backup or master), 0 for the others.
# TYPE gocarp_carp_state gauge
gocarp_carp_state{state="backup",vhid="3"} 1
gocarp_carp_state{state="init",vhid="3"} 0
gocarp_carp_state{state="master",vhid="3"} 0
`, "gocarp_carp_state")

		// Two rejects, a demotion, then the takeover.
		advert := func(ttl int, cut int) {
			auth, err := carp.NewAuthenticator([]byte("secret"), 3, vips)
			if err != nil {
				t.Fatal(err)
			}
			adv := carp.Advertisement{VHID: 3, AdvBase: 1, Counter: 1}
			auth.Sign(&adv)
			p, _ := adv.MarshalBinary()
			port.Inject(carp.Packet{Family: carp.IPv4, Payload: p[:len(p)-cut], Src: netip.MustParseAddr("192.0.2.99"),
				Dst: netip.MustParseAddr("224.0.0.18"), TTL: ttl})
		}
		advert(64, 0)   // routed: bad TTL
		advert(255, 20) // truncated
		b.SetDemotion("test", 5)
		if err := a.Close(); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		compare(t, c, `
# HELP gocarp_carp_state 1 for the state the group is in (init, backup or master), 0 for the others.
# TYPE gocarp_carp_state gauge
gocarp_carp_state{state="backup",vhid="3"} 0
gocarp_carp_state{state="init",vhid="3"} 0
gocarp_carp_state{state="master",vhid="3"} 1
# HELP gocarp_carp_demotion Demotion the group advertises: the sum over its sources, capped at 255.
# TYPE gocarp_carp_demotion gauge
gocarp_carp_demotion{vhid="3"} 5
# HELP gocarp_carp_transitions_total State changes, by the state entered and the reason carp gives.
# TYPE gocarp_carp_transitions_total counter
gocarp_carp_transitions_total{reason="bow-out received",state="master",vhid="3"} 1
gocarp_carp_transitions_total{reason="configured to start as master",state="master",vhid="3"} 0
gocarp_carp_transitions_total{reason="group closed",state="init",vhid="3"} 0
gocarp_carp_transitions_total{reason="initialization complete",state="backup",vhid="3"} 1
gocarp_carp_transitions_total{reason="link down",state="init",vhid="3"} 0
gocarp_carp_transitions_total{reason="link up",state="backup",vhid="3"} 0
gocarp_carp_transitions_total{reason="master timed out",state="master",vhid="3"} 0
gocarp_carp_transitions_total{reason="master stepped down",state="master",vhid="3"} 0
gocarp_carp_transitions_total{reason="master will time out",state="master",vhid="3"} 0
gocarp_carp_transitions_total{reason="more frequent advertisement received",state="backup",vhid="3"} 0
gocarp_carp_transitions_total{reason="preempting a more demoted master",state="master",vhid="3"} 0
gocarp_carp_transitions_total{reason="preempting a slower master",state="master",vhid="3"} 0
gocarp_carp_transitions_total{reason="user requested",state="backup",vhid="3"} 0
# HELP gocarp_carp_adverts_sent_total Adverts sent (carpstats opackets, opackets6).
# TYPE gocarp_carp_adverts_sent_total counter
gocarp_carp_adverts_sent_total{family="ipv4",vhid="3"} 1
gocarp_carp_adverts_sent_total{family="ipv6",vhid="3"} 0
# HELP gocarp_carp_packets_received_total Packets received on IP protocol 112, valid or not (carpstats ipackets, ipackets6).
# TYPE gocarp_carp_packets_received_total counter
gocarp_carp_packets_received_total{family="ipv4",vhid="3"} 9
gocarp_carp_packets_received_total{family="ipv6",vhid="3"} 0
# HELP gocarp_carp_rejected_total Received packets dropped, by the BSD carpstats counter that names the reason.
# TYPE gocarp_carp_rejected_total counter
gocarp_carp_rejected_total{reason="badauth",vhid="3"} 0
gocarp_carp_rejected_total{reason="badif",vhid="3"} 0
gocarp_carp_rejected_total{reason="badlen",vhid="3"} 0
gocarp_carp_rejected_total{reason="badloop",vhid="3"} 0
gocarp_carp_rejected_total{reason="badsum",vhid="3"} 0
gocarp_carp_rejected_total{reason="badttl",vhid="3"} 1
gocarp_carp_rejected_total{reason="badver",vhid="3"} 0
gocarp_carp_rejected_total{reason="badvhid",vhid="3"} 0
gocarp_carp_rejected_total{reason="hdrops",vhid="3"} 1
gocarp_carp_rejected_total{reason="replay",vhid="3"} 0
# HELP gocarp_carp_preemptions_total Changes to master, whatever the reason (carpstats preempt).
# TYPE gocarp_carp_preemptions_total counter
gocarp_carp_preemptions_total{vhid="3"} 1
`,
			"gocarp_carp_state", "gocarp_carp_demotion", "gocarp_carp_transitions_total",
			"gocarp_carp_adverts_sent_total", "gocarp_carp_packets_received_total",
			"gocarp_carp_rejected_total", "gocarp_carp_preemptions_total")
	})
}

// TestGroupContested: a master that hears and answers a worse master
// counts it in gocarp_carp_contested_total.
func TestGroupContested(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		seg := carptest.NewSegment(1)
		a, port := newGroup(t, seg, carp.Config{VHID: 3, StartAsMaster: true})
		c := metrics.NewGroup(a)
		if err := a.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		auth, err := carp.NewAuthenticator([]byte("secret"), 3, vips)
		if err != nil {
			t.Fatal(err)
		}
		adv := carp.Advertisement{VHID: 3, AdvBase: 1, AdvSkew: 200, Counter: 7}
		auth.Sign(&adv)
		p, _ := adv.MarshalBinary()
		port.Inject(carp.Packet{Family: carp.IPv4, Payload: p, Src: netip.MustParseAddr("192.0.2.99"),
			Dst: netip.MustParseAddr("224.0.0.18"), TTL: 255})
		synctest.Wait()
		compare(t, c, `
# HELP gocarp_carp_contested_total Adverts of another, worse master this master answered at once (a split brain healing, a backup that missed an advert).
# TYPE gocarp_carp_contested_total counter
gocarp_carp_contested_total{vhid="3"} 1
`, "gocarp_carp_contested_total")
	})
}
