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
	Reason string    // why, in carp(4)'s words: "master timed out", "preempting a slower master", ...
	At     time.Time // when the protocol loop made the change
}
