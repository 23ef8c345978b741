package metrics_test

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gocarp/gocarp/carp"
	"github.com/gocarp/gocarp/carp/carptest"
	"github.com/gocarp/gocarp/metrics"
	"github.com/gocarp/gocarp/pfsync/seal"
	"github.com/gocarp/gocarp/vip"
	"github.com/gocarp/gocarp/vip/viptest"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// collectors registers one collector of each kind in reg, over live
// components (a started group, an engine with a peer), and returns them.
func collectors(t *testing.T, reg *prometheus.Registry) []prometheus.Collector {
	t.Helper()
	seg := carptest.NewSegment(1)
	g, _ := newGroup(t, seg, carp.Config{VHID: 1, StartAsMaster: true})
	if err := g.Start(); err != nil {
		t.Fatal(err)
	}
	f, err := vip.NewFollower(vip.Config{VHID: 1, Addrs: vip.Host(vips...), Manager: viptest.NewAddrManager(&viptest.Recorder{})})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if err := f.Start(); err != nil {
		t.Fatal(err)
	}
	psk, err := seal.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	s, err := seal.New(seal.Config{Node: 1, Boot: 1, Keys: []seal.Key{{ID: 1, Secret: psk}}, SendKeyID: 1})
	if err != nil {
		t.Fatal(err)
	}
	es := newEngines(t, 2)
	cs := []prometheus.Collector{metrics.NewGroup(g), metrics.NewFollower(1, f), metrics.NewEngine(es[0]),
		metrics.NewSealer(s), metrics.NewConntrack(&fakeConntrack{})}
	reg.MustRegister(cs...)
	return cs
}

var fqName = regexp.MustCompile(`fqName: "([^"]+)"`)

// describedNames returns the names of every metric the collectors
// describe, sorted.
func describedNames(t *testing.T) []string {
	var names []string
	synctest.Test(t, func(t *testing.T) {
		ch := make(chan *prometheus.Desc, 1000)
		for _, c := range collectors(t, prometheus.NewRegistry()) {
			c.Describe(ch)
		}
		close(ch)
		for d := range ch {
			m := fqName.FindStringSubmatch(d.String())
			if m == nil {
				t.Fatalf("no name in %v", d)
			}
			names = append(names, m[1])
		}
	})
	slices.Sort(names)
	return names
}

// TestLint runs promlint over everything the collectors export, with
// every peer-labelled metric present (the engine has a peer). The
// pedantic registry also checks that what is collected was described.
func TestLint(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg := prometheus.NewPedanticRegistry()
		cs := collectors(t, reg)
		time.Sleep(5 * time.Second) // the group becomes master, the engines meet
		synctest.Wait()
		problems, err := testutil.GatherAndLint(reg)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range problems {
			t.Errorf("%s: %s", p.Metric, p.Text)
		}
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		var gathered []string
		for _, mf := range mfs {
			if !strings.HasPrefix(mf.GetName(), "gocarp_") {
				t.Errorf("%s: no gocarp_ prefix", mf.GetName())
			}
			gathered = append(gathered, mf.GetName())
		}
		// Every described metric was linted.
		ch := make(chan *prometheus.Desc, 1000)
		for _, c := range cs {
			c.Describe(ch)
		}
		close(ch)
		for d := range ch {
			if n := fqName.FindStringSubmatch(d.String())[1]; !slices.Contains(gathered, n) {
				t.Errorf("%s described but not gathered", n)
			}
		}
	})
}

// TestDocListsEveryMetric checks that the package doc names every metric
// the collectors export, and no metric they do not.
func TestDocListsEveryMetric(t *testing.T) {
	doc, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	names := describedNames(t)
	if len(names) < 100 {
		t.Fatalf("only %d metrics gathered: %v", len(names), names)
	}
	for _, n := range names {
		if !regexp.MustCompile(`\b` + n + `\b`).Match(doc) {
			t.Errorf("doc.go does not list %s", n)
		}
	}
	for _, m := range regexp.MustCompile(`\bgocarp_[a-z0-9_]+`).FindAllString(string(doc), -1) {
		if !slices.Contains(names, m) {
			t.Errorf("doc.go lists %s, which no collector exports", m)
		}
	}
}
