package metrics_test

import (
	"fmt"
	"log"
	"net/netip"
	"strings"

	"github.com/gocarp/gocarp/carp"
	"github.com/gocarp/gocarp/carp/carptest"
	"github.com/gocarp/gocarp/metrics"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// Register a group's collector and read what a scrape would serve. A
// daemon would serve reg with promhttp.HandlerFor on its metrics address.
func Example() {
	g, err := carp.NewGroup(carp.Config{
		VHID:      5,
		Addrs:     []netip.Addr{netip.MustParseAddr("192.0.2.10")},
		Password:  []byte("secret"),
		Transport: carptest.NewSegment(1).Join(carp.IPv4), // carp.NewRawTransport on a real interface
	})
	if err != nil {
		log.Fatal(err)
	}
	defer g.Close()
	g.SetDemotion("healthcheck", 10)

	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics.NewGroup(g))
	want := `
# HELP gocarp_carp_demotion Demotion the group advertises: the sum over its sources, capped at 255.
# TYPE gocarp_carp_demotion gauge
gocarp_carp_demotion{vhid="5"} 10
# HELP gocarp_carp_state 1 for the state the group is in (init, backup or master), 0 for the others.
# TYPE gocarp_carp_state gauge
gocarp_carp_state{state="backup",vhid="5"} 0
gocarp_carp_state{state="init",vhid="5"} 1
gocarp_carp_state{state="master",vhid="5"} 0
`
	err = testutil.GatherAndCompare(reg, strings.NewReader(want), "gocarp_carp_state", "gocarp_carp_demotion")
	fmt.Println("scrape matches:", err == nil)
	n, err := testutil.GatherAndCount(reg)
	fmt.Println("samples:", n, err)
	// Output:
	// scrape matches: true
	// samples: 42 <nil>
}
