package main

import (
	"time"

	"github.com/gocarp/gocarp/confsync"
)

// DocumentStatus is one replicated or applied document in -status.
type DocumentStatus struct {
	Name string `json:"name"`
	Role string `json:"role"` // publish, subscribe, off
	Path string `json:"path,omitempty"`
	// Version is the version in force on this node (0: none yet; a
	// subscriber's own ruleset file applied until the first version
	// arrives is version 0).
	Version uint64 `json:"version"`
	// Publisher, Offered and Receiving are a subscriber's: the node the
	// document comes from, the newest version it offered (0: not heard
	// since this start), the version being received (0: none).
	Publisher uint32 `json:"publisher,omitempty"`
	Offered   uint64 `json:"offered,omitempty"`
	Receiving uint64 `json:"receiving,omitempty"`
	// Failed is the newest received version whose apply failed.
	Failed uint64 `json:"failed,omitempty"`
	// Err is the last error: a refused ruleset or file (publisher, off),
	// a received version not applied (subscriber). Empty once a newer
	// version is in force.
	Err   string    `json:"error,omitempty"`
	ErrAt time.Time `json:"error_at,omitzero"`
	// Peers is, on the publisher, what each subscriber last reported.
	Peers []DocumentPeerStatus `json:"peers,omitempty"`
}

// DocumentPeerStatus is what a subscriber reported of a document.
type DocumentPeerStatus struct {
	Node    uint32    `json:"node"`
	Applied uint64    `json:"applied"`
	Failed  uint64    `json:"failed,omitempty"`
	Err     string    `json:"error,omitempty"`
	Heard   time.Time `json:"heard"`
}

// status reports every document, in configuration order. ds may be nil
// (while the daemon starts).
func (ds *documents) status() []DocumentStatus {
	if ds == nil {
		return nil
	}
	var cs map[string]confsync.DocumentStatus
	if ds.node != nil {
		cs = map[string]confsync.DocumentStatus{}
		for _, s := range ds.node.Status() {
			cs[s.Name] = s
		}
	}
	ds.mu.Lock()
	defer ds.mu.Unlock()
	var out []DocumentStatus
	for _, name := range ds.order {
		d := ds.docs[name]
		st := DocumentStatus{Name: name, Role: d.role, Path: d.path, Version: d.version, Err: d.err, ErrAt: d.errAt}
		if c, ok := cs[name]; ok {
			switch d.role {
			case syncSubscribe:
				// The version is fwpair's, not confsync's record: a copy
				// that failed to re-apply at start is not in force.
				st.Publisher, st.Offered, st.Receiving, st.Failed = uint32(c.Publisher), c.Offered, c.Receiving, c.Failed
				if st.Err == "" && c.Err != "" {
					st.Err = c.Err
				}
			case syncPublish:
				for _, p := range c.Peers {
					st.Peers = append(st.Peers, DocumentPeerStatus{Node: uint32(p.Node), Applied: p.Applied, Failed: p.Failed, Err: p.Err, Heard: p.Heard})
				}
			}
		}
		out = append(out, st)
	}
	return out
}

// stats returns the configuration sync's counters (zero when nothing is
// replicated).
func (ds *documents) stats() confsync.Stats {
	if ds == nil || ds.node == nil {
		return confsync.Stats{}
	}
	return ds.node.Stats()
}
