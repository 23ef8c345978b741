package sdnotify

import (
	"fmt"
	"time"

	"github.com/gocarp/gocarp/carp"
)

// stepDownMargin covers a step-down (carpd's SIGUSR2 suppresses takeover
// for 3 s plus the master-down interval), during which a lone group
// neither sends nor receives.
const stepDownMargin = 5 * time.Second

// Stall tells whether CARP groups' protocol loops make progress. A running
// group's loop sends an advert every advert interval (MASTER), counts one
// received from its master (BACKUP), or takes over after the master-down
// interval; so its packet counters, which only the loop advances, move
// within a few master-down intervals. A group in INIT (link down, hold-down,
// closed) has nothing to do and is not checked.
type Stall struct {
	groups []*carp.Group
	last   []uint64
	moved  []time.Time
}

// NewStall returns a Stall for groups, all counted as having just moved.
func NewStall(now time.Time, groups ...*carp.Group) *Stall {
	s := &Stall{groups: groups, last: make([]uint64, len(groups)), moved: make([]time.Time, len(groups))}
	for i, g := range groups {
		s.last[i] = progress(g)
		s.moved[i] = now
	}
	return s
}

// Check returns an error naming the first group whose loop has not moved
// for longer than 3 master-down intervals plus a step-down's margin.
func (s *Stall) Check(now time.Time) error {
	for i, g := range s.groups {
		p := progress(g)
		if p != s.last[i] || g.State() == carp.Init {
			s.last[i], s.moved[i] = p, now
			continue
		}
		if limit := 3*g.MasterDownInterval() + stepDownMargin; now.Sub(s.moved[i]) > limit {
			return fmt.Errorf("sdnotify: vhid %d: no advert sent or received for %v (state %v)", g.VHID(), now.Sub(s.moved[i]).Round(time.Millisecond), g.State())
		}
	}
	return nil
}

func progress(g *carp.Group) uint64 {
	st := g.Stats()
	return st.Ipackets + st.Ipackets6 + st.Opackets + st.Opackets6 + st.Oerrors + st.Preempt
}
