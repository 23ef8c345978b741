package pfsync

import (
	"slices"
	"testing"
	"time"

	"github.com/gocarp/gocarp/pfsync/wire"
)

// events records what a peer's tick asks for.
type events struct{ got []string }

func (r *events) peerDown(*peer, time.Time) { r.got = append(r.got, "down") }
func (r *events) askEcho(p *peer, now time.Time) {
	r.got = append(r.got, "echo")
	p.helloAt = now.Add(time.Second)
}
func (r *events) gapGivenUp(p *peer, now time.Time) {
	r.got = append(r.got, "gap")
	p.skipGap(p.gapHigh, now)
}
func (r *events) resyncTimedOut(p *peer, _ time.Time) {
	r.got = append(r.got, "resync")
	p.resyncAt = time.Time{}
}
func (r *events) completeBulk(p *peer, _ time.Time) {
	r.got = append(r.got, "complete")
	p.bulk = bulkRecv{state: bulkComplete}
}
func (r *events) bulkTimedOut(p *peer, _ time.Time) {
	r.got = append(r.got, "bulk")
	p.bulk = bulkRecv{}
}

// TestPeerTick: what a peer's timers ask for, and when it wants to be
// looked at next.
func TestPeerTick(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	timers := peerTimers{dead: 3 * time.Second, gap: 2 * time.Second}
	for _, tt := range []struct {
		name       string
		p          peer
		at         time.Duration
		want       []string
		ack, forgt bool
		next       time.Duration // from t0; 0: the horizon (10 s)
	}{
		{name: "quiet", p: peer{up: true, confirmed: true, lastHeard: t0}, at: time.Second, next: 3 * time.Second},
		{name: "silent: down", p: peer{up: true, confirmed: true, lastHeard: t0, bulk: bulkRecv{state: bulkRequested}},
			at: 3 * time.Second, want: []string{"down"}},
		{name: "silent and never confirmed: forgotten", p: peer{up: true, lastHeard: t0}, at: 4 * time.Second, want: []string{"down"}, forgt: true},
		{name: "unconfirmed: hello due", p: peer{up: true, lastHeard: t0, helloAt: t0}, at: time.Second, want: []string{"echo"}, next: 2 * time.Second},
		{name: "ack due", p: peer{up: true, confirmed: true, lastHeard: t0, ackDue: true, ackAt: t0}, at: time.Second, ack: true, next: 3 * time.Second},
		{name: "ack later", p: peer{up: true, confirmed: true, lastHeard: t0, ackDue: true, ackAt: t0.Add(1500 * time.Millisecond)}, at: time.Second, next: 1500 * time.Millisecond},
		{name: "gap: nack due", p: peer{up: true, confirmed: true, lastHeard: t0, next: 5, highest: 7, gapSince: t0, gapHigh: 7},
			at: time.Second, ack: true, next: 2 * time.Second},
		{name: "gap given up", p: peer{up: true, confirmed: true, lastHeard: t0.Add(2 * time.Second), next: 5, highest: 7, gapSince: t0, gapHigh: 7},
			at: 2 * time.Second, want: []string{"gap"}, next: 5 * time.Second},
		{name: "resync timed out", p: peer{up: true, confirmed: true, lastHeard: t0, digests: digests{resyncAt: t0}}, at: time.Second, want: []string{"resync"}, next: 3 * time.Second},
		{name: "bulk settled but for its end", p: peer{up: true, confirmed: true, lastHeard: t0, bulk: bulkRecv{state: bulkReceiving, deadline: t0}},
			at: time.Second, want: []string{"complete"}, next: 3 * time.Second},
		{name: "bulk timed out", p: peer{up: true, confirmed: true, lastHeard: t0, bulk: bulkRecv{state: bulkReceiving, session: wire.AllBuckets(), deadline: t0}},
			at: time.Second, want: []string{"bulk"}, next: 3 * time.Second},
		{name: "bulk marks wait behind a gap", p: peer{up: true, confirmed: true, lastHeard: t0, next: 5, highest: 7, gapSince: t0, gapHigh: 7, nackAt: t0.Add(time.Hour),
			bulk: bulkRecv{state: bulkReceiving, session: wire.AllBuckets(), deadline: t0, marks: []pendingMark{{seq: 8}}}},
			at: time.Second, next: 2 * time.Second},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var ev events
			w := wakeup{next: t0.Add(10 * time.Second)}
			p := tt.p
			ack, forget := p.tick(t0.Add(tt.at), timers, &ev, &w)
			if !slices.Equal(ev.got, tt.want) || ack != tt.ack || forget != tt.forgt {
				t.Errorf("events %v ack %v forget %v; want %v %v %v", ev.got, ack, forget, tt.want, tt.ack, tt.forgt)
			}
			want := 10 * time.Second
			if tt.next != 0 {
				want = tt.next
			}
			if got := w.next.Sub(t0); got != want {
				t.Errorf("next look at +%v, want +%v", got, want)
			}
		})
	}
}

// TestAntiEntropySchedule: digests every interval (none when 0), the
// tombstone scan every tombScan, and the next of them in the wakeup.
func TestAntiEntropySchedule(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	a := antiEntropy{interval: 5 * time.Second, tombScan: 15 * time.Second}
	a.start(t0)
	w := wakeup{next: t0.Add(time.Minute)}
	if d, s := a.due(t0.Add(time.Second), &w); d || s || !w.next.Equal(t0.Add(5*time.Second)) {
		t.Errorf("at +1s: digest %v scan %v next +%v", d, s, w.next.Sub(t0))
	}
	if d, s := a.due(t0.Add(5*time.Second), &w); !d || s || !a.nextDigest.Equal(t0.Add(10*time.Second)) {
		t.Errorf("at +5s: digest %v scan %v", d, s)
	}
	if _, s := a.due(t0.Add(15*time.Second), &w); !s || !a.nextTombScan.Equal(t0.Add(30*time.Second)) {
		t.Errorf("at +15s: scan %v", s)
	}
	off := antiEntropy{tombScan: 15 * time.Second}
	off.start(t0)
	w = wakeup{next: t0.Add(time.Minute)}
	if d, _ := off.due(t0.Add(time.Hour), &w); d {
		t.Error("a digest with anti-entropy off")
	}
}

// TestDigestsBounds: one anti-entropy round per interval with no bucket
// compared twice in it, one answer to a digest request per interval, and a
// resync that ends once every bucket was compared, with those that differ.
func TestDigestsBounds(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	var d digests
	var lo, hi wire.BucketSet
	lo.Add(0)
	hi.Add(1)
	if !d.aePart(lo, t0, time.Second) || !d.aePart(hi, t0, time.Second) || d.aePart(lo, t0.Add(time.Millisecond), time.Second) {
		t.Error("anti-entropy: want two parts, then the first refused as a repeat")
	}
	if !d.aePart(lo, t0.Add(time.Second), time.Second) {
		t.Error("anti-entropy: a new round refused")
	}
	if !d.mayAnswer(t0, time.Second) || d.mayAnswer(t0.Add(time.Millisecond), time.Second) || !d.mayAnswer(t0.Add(time.Second), time.Second) {
		t.Error("digest requests: want one answer per second")
	}
	ours := make([]uint64, wire.Buckets)
	theirs := make([]uint64, wire.Buckets)
	theirs[3] = 1
	d.startResync(t0.Add(time.Second))
	half := wire.Buckets / 2
	var first wire.BucketSet
	for i := range half {
		first.Add(i)
	}
	if !d.resyncPart(first) || d.resyncPart(first) {
		t.Error("resync: want the first half once")
	}
	if done, _ := d.resyncCompare(0, theirs[:half], ours); done {
		t.Error("resync done after half the buckets")
	}
	done, repair := d.resyncCompare(half, theirs[half:], ours)
	if !done || repair.Len() != 1 || !repair.Has(3) || !d.resyncAt.IsZero() {
		t.Errorf("resync: done %v, repair %d buckets (want bucket 3)", done, repair.Len())
	}
}
