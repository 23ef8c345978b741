package carp

import (
	"strconv"
	"time"
)

// State is the CARP state of a group (one virtual host id).
type State uint8

// States. The zero value is Init.
const (
	// Init: not running, link down, or hold-down not yet over. Adverts are ignored.
	Init State = iota
	// Backup: listening; becomes Master when the master-down timer expires.
	Backup
	// Master: sends adverts every advert interval and owns the virtual addresses.
	Master
)

// String returns "INIT", "BACKUP" or "MASTER", as carp(4) prints them.
func (s State) String() string {
	switch s {
	case Init:
		return "INIT"
	case Backup:
		return "BACKUP"
	case Master:
		return "MASTER"
	}
	return "State(" + strconv.Itoa(int(s)) + ")"
}

// Transition is one state change of a group, as delivered to the embedder.
type Transition struct {
	VHID   uint8     // the group's virtual host id
	From   State     // the state left
	To     State     // the state entered
	Reason Reason    // why: ReasonMasterTimedOut, ReasonPreempt, ...
	At     time.Time // when the protocol loop made the change
}

// Reason says why a group changed state. Its value is the sentence carp(4)
// uses for the change where carp(4) has one (FreeBSD logs these at
// net.inet.carp.log=1), so it can be logged or handed to a script as it
// is. A Group only reports the Reasons declared here; an embedder may make
// up others for transitions it synthesises (a Reason is a string).
type Reason string

// Reasons of state changes.
const (
	ReasonMasterTimedOut Reason = "master timed out"
	ReasonPreempt        Reason = "preempting a slower master"
	ReasonDemotedMaster  Reason = "preempting a more demoted master"
	ReasonMoreFrequent   Reason = "more frequent advertisement received"
	ReasonWillTimeOut    Reason = "master will time out"
	ReasonBowOut         Reason = "bow-out received"
	// ReasonSteppedDown: the master advertised a worse timing, priority
	// or demotion than before, which makes this BACKUP the better node; a
	// planned handover (Reconfigure, SetDemotion on the master), taken
	// without waiting and whatever Config.Preempt says.
	ReasonSteppedDown   Reason = "master stepped down"
	ReasonLinkDown      Reason = "link down"
	ReasonLinkUp        Reason = "link up"
	ReasonUser          Reason = "user requested"
	ReasonInit          Reason = "initialization complete"
	ReasonStartAsMaster Reason = "configured to start as master"
	ReasonClosed        Reason = "group closed"
)

// String returns the reason's sentence.
func (r Reason) String() string { return string(r) }
