package carp_test

import (
	"context"
	"log/slog"
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gocarp/gocarp/carp"
	"github.com/gocarp/gocarp/carp/carptest"
)

// freezer is a slog.Handler that stops the goroutine logging msg until it
// is thawed: it freezes a group's protocol loop the way SIGSTOP freezes a
// process, while adverts keep arriving and queue up behind the reader.
type freezer struct {
	msg    string
	frozen chan struct{}
	thaw   chan struct{}
}

func (*freezer) Enabled(context.Context, slog.Level) bool { return true }
func (f *freezer) Handle(_ context.Context, r slog.Record) error {
	if r.Message == f.msg {
		f.frozen <- struct{}{}
		<-f.thaw
	}
	return nil
}
func (f *freezer) WithAttrs([]slog.Attr) slog.Handler { return f }
func (f *freezer) WithGroup(string) slog.Handler      { return f }

// TestFrozenBackupReadsBeforeTakingOver: a backup whose protocol loop was
// stopped for longer than the master-down interval, while its master went
// on advertising, does not take over when it resumes: the adverts that
// waited are read first. On resume the expired timer and a waiting advert
// are ready at once, and a select picks either: the old loop took over on
// about half of the resumes (found by the chaos soak with SIGSTOP), so the
// backup is frozen twenty times.
func TestFrozenBackupReadsBeforeTakingOver(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &freezer{msg: "carp: demotion changed", frozen: make(chan struct{}), thaw: make(chan struct{})}
		b := newNode(t, carptest.NewSegment(1), "b", carp.Config{AdvSkew: 100, Logger: slog.New(f)}).start(t)
		m := &scripted{t: t, src: netip.MustParseAddr("192.0.2.1"), counter: 99}
		for range 4 {
			m.advert(b)
			sleep(time.Second)
		}
		wantState(t, b, carp.Backup)
		frozenFor := b.g.MasterDownInterval() + 2*time.Second
		for round := range 20 {
			b.g.SetDemotion("freeze", round%2+1) // a change the loop logs, and stops there
			<-f.frozen
			for range int(frozenFor / time.Second) {
				m.advert(b)
				sleep(time.Second)
			}
			f.thaw <- struct{}{}
			m.advert(b)
			sleep(time.Second)
		}
		wantState(t, b, carp.Backup)
		for _, tr := range b.transitions() {
			if tr.To == carp.Master {
				t.Fatalf("the backup took over after a freeze although its master advertised throughout: %+v", tr)
			}
		}
		if s := b.g.Stats(); s.LateTimers == 0 {
			t.Errorf("LateTimers 0 after 20 freezes past the master-down interval")
		}

		// The master dies: the backup takes over at the master-down
		// interval, its timer on time.
		died := time.Now().Add(-time.Second)
		sleep(b.g.MasterDownInterval())
		wantState(t, b, carp.Master)
		if tr := b.last(); tr.Reason != carp.ReasonMasterTimedOut || tr.At.Sub(died) != b.g.MasterDownInterval() {
			t.Errorf("%+v, want %q %v after the last advert", tr, carp.ReasonMasterTimedOut, b.g.MasterDownInterval())
		}
	})
}

// TestResumeAtTimerExpiryReadsFirst: a backup stopped until the very
// instant its master-down timer falls due, while its master went on
// advertising, reads the adverts that waited before it takes over. The
// timer is not late, so lateness does not reveal the stop; the unread
// adverts do. The old loop picked the timer or the advert at random on
// each resume (the chaos soak's carpd freeze of 3.1 s of a 3.39 s
// master-down interval), so the backup resumes twenty times.
func TestResumeAtTimerExpiryReadsFirst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &freezer{msg: "carp: demotion changed", frozen: make(chan struct{}), thaw: make(chan struct{})}
		b := newNode(t, carptest.NewSegment(1), "b", carp.Config{AdvSkew: 100, Logger: slog.New(f)}).start(t)
		m := &scripted{t: t, src: netip.MustParseAddr("192.0.2.1"), counter: 99}
		for range 4 {
			m.advert(b)
			sleep(time.Second)
		}
		wantState(t, b, carp.Backup)
		mdi := b.g.MasterDownInterval()
		for round := range 20 {
			m.advert(b)
			synctest.Wait() // read: the master-down timer falls due mdi from now
			b.g.SetDemotion("freeze", round%2+1)
			<-f.frozen
			var waited time.Duration
			for ; waited+time.Second < mdi; waited += time.Second {
				sleep(time.Second)
				m.advert(b)
			}
			time.Sleep(mdi - waited) // to the instant the timer is due
			f.thaw <- struct{}{}
			sleep(time.Second - (mdi - waited))
		}
		wantState(t, b, carp.Backup)
		for _, tr := range b.transitions() {
			if tr.To == carp.Master {
				t.Fatalf("the backup took over on resume although its master's adverts waited unread: %+v", tr)
			}
		}
		if s := b.g.Stats(); s.Unread == 0 || s.LateTimers != 0 {
			t.Errorf("Unread %d LateTimers %d after 20 resumes at the timer's expiry; want Unread > 0, LateTimers 0", s.Unread, s.LateTimers)
		}

		// The master dies: the backup still takes over at the master-down
		// interval, nothing unread.
		m.advert(b)
		died := time.Now()
		sleep(mdi)
		wantState(t, b, carp.Master)
		if tr := b.last(); tr.Reason != carp.ReasonMasterTimedOut || tr.At.Sub(died) != mdi {
			t.Errorf("%+v, want %q %v after the last advert", tr, carp.ReasonMasterTimedOut, mdi)
		}
	})
}
