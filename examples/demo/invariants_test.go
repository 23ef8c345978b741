package main

import (
	"errors"
	"io"
	"net/netip"
	"testing"
	"time"

	"github.com/gocarp/gocarp/carp"
	"github.com/gocarp/gocarp/vip/viptest"
	"github.com/google/go-cmp/cmp"
)

func TestMasterWatch(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	type ev struct {
		ms        int
		node      string
		from, to  carp.State
		crash     bool
		restarted bool
	}
	tests := []struct {
		name        string
		events      []ev
		wantOverlap []time.Duration
		wantMasters []string
		wantErr     bool
	}{
		{
			name: "clean failover after a crash",
			events: []ev{
				{ms: 0, node: "node1", from: carp.Init, to: carp.Master},
				{ms: 0, node: "node2", from: carp.Init, to: carp.Backup},
				{ms: 1000, node: "node1", crash: true},
				{ms: 4391, node: "node2", from: carp.Backup, to: carp.Master},
				{ms: 4500, node: "node1", from: carp.Master, to: carp.Init}, // its Close, after death: ignored
			},
			wantMasters: []string{"node2"},
		},
		{
			name: "preemption transient is allowed",
			events: []ev{
				{ms: 0, node: "node2", from: carp.Backup, to: carp.Master},
				{ms: 5000, node: "node1", restarted: true},
				{ms: 5500, node: "node1", from: carp.Init, to: carp.Backup},
				{ms: 6000, node: "node1", from: carp.Backup, to: carp.Master},
				{ms: 6001, node: "node2", from: carp.Master, to: carp.Backup},
			},
			wantOverlap: []time.Duration{time.Millisecond},
			wantMasters: []string{"node1"},
		},
		{
			name: "transitions delivered out of order are sorted by time",
			events: []ev{
				{ms: 6001, node: "node2", from: carp.Master, to: carp.Backup},
				{ms: 0, node: "node2", from: carp.Backup, to: carp.Master},
				{ms: 6000, node: "node1", from: carp.Backup, to: carp.Master},
			},
			wantOverlap: []time.Duration{time.Millisecond},
			wantMasters: []string{"node1"},
		},
		{
			name: "split brain longer than the transient fails",
			events: []ev{
				{ms: 0, node: "node1", from: carp.Init, to: carp.Master},
				{ms: 100, node: "node2", from: carp.Backup, to: carp.Master},
				{ms: 2100, node: "node1", from: carp.Master, to: carp.Backup},
			},
			wantOverlap: []time.Duration{2 * time.Second},
			wantMasters: []string{"node2"},
			wantErr:     true,
		},
		{
			name: "a split brain still open at the check fails",
			events: []ev{
				{ms: 0, node: "node1", from: carp.Init, to: carp.Master},
				{ms: 0, node: "node3", from: carp.Init, to: carp.Master},
			},
			wantOverlap: []time.Duration{10 * time.Second},
			wantMasters: []string{"node1", "node3"},
			wantErr:     true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newMasterWatch(time.Second)
			for _, e := range tt.events {
				switch {
				case e.crash:
					w.crashed(e.node, at(e.ms))
				case e.restarted:
					w.restarted(e.node, at(e.ms))
				default:
					w.transition(e.node, carp.Transition{VHID: 1, From: e.from, To: e.to, At: at(e.ms)})
				}
			}
			overlaps, err := w.check(at(10000))
			if (err != nil) != tt.wantErr {
				t.Errorf("check error = %v, want error %v", err, tt.wantErr)
			}
			var got []time.Duration
			for _, o := range overlaps {
				got = append(got, o.to.Sub(o.from))
			}
			if diff := cmp.Diff(tt.wantOverlap, got); diff != "" {
				t.Errorf("overlaps (-want +got):\n%s", diff)
			}
			_, masters := w.sweep(at(10000))
			if diff := cmp.Diff(tt.wantMasters, masters); diff != "" {
				t.Errorf("masters (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCheckOrdering(t *testing.T) {
	prefix := netip.MustParsePrefix("192.0.2.100/24")
	addrs := []netip.Addr{prefix.Addr()}
	tests := []struct {
		name  string
		calls []viptest.Call
		want  []string
	}{
		{
			name: "commit, install, announce",
			calls: []viptest.Call{
				{Op: opCommit}, {Op: viptest.OpAdd, Prefix: prefix}, {Op: viptest.OpAnnounce, Addrs: addrs},
			},
		},
		{
			name: "install before commit",
			calls: []viptest.Call{
				{Op: viptest.OpAdd, Prefix: prefix}, {Op: opCommit}, {Op: viptest.OpAnnounce, Addrs: addrs},
			},
			want: []string{"node2 installed 192.0.2.100/24 before committing the replicated state"},
		},
		{
			name: "failed commit does not count",
			calls: []viptest.Call{
				{Op: opCommit, Err: errors.New("deadline")}, {Op: viptest.OpAdd, Prefix: prefix},
			},
			want: []string{"node2 installed 192.0.2.100/24 before committing the replicated state"},
		},
		{
			name: "a withdrawal requires a new commit",
			calls: []viptest.Call{
				{Op: opCommit}, {Op: viptest.OpAdd, Prefix: prefix}, {Op: viptest.OpRemove, Prefix: prefix},
				{Op: viptest.OpAdd, Prefix: prefix}, {Op: viptest.OpAnnounce, Addrs: addrs},
			},
			want: []string{"node2 installed 192.0.2.100/24 before committing the replicated state"},
		},
		{
			name:  "announce without install",
			calls: []viptest.Call{{Op: opCommit}, {Op: viptest.OpAnnounce, Addrs: addrs}},
			want:  []string{"node2 announced [192.0.2.100] before installing it"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := &node{name: "node2", rec: &viptest.Recorder{}}
			for _, c := range tt.calls {
				n.rec.Record(c)
			}
			l := &lan{tl: newTimeline(io.Discard), booted: []*node{n}}
			l.checkOrdering()
			if diff := cmp.Diff(tt.want, l.failures); diff != "" {
				t.Errorf("failures (-want +got):\n%s", diff)
			}
		})
	}
}
