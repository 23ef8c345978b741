package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/gocarp/gocarp/carp"
	"github.com/gocarp/gocarp/confsync"
	"github.com/gocarp/gocarp/pfsync"
	"github.com/gocarp/gocarp/pfsync/conntrack"
	"github.com/gocarp/gocarp/pfsync/seal"
	"github.com/gocarp/gocarp/pfsync/udp"
	"github.com/gocarp/gocarp/vip"
)

// Status is what `fwpair -status` prints and SIGUSR1 logs: one JSON
// object.
type Status struct {
	Node            uint32          `json:"node"`
	Uptime          string          `json:"uptime"`
	StartedAsMaster bool            `json:"started_as_master"`
	Goroutines      int             `json:"goroutines"`  // runtime.NumGoroutine(): growing over a long run is a leak
	Maintenance     Maintenance     `json:"maintenance"` // persistent maintenance mode (maintenance.go)
	Groups          []GroupStatus   `json:"groups"`
	Track           []TrackStatus   `json:"track,omitempty"` // the health checks (trackers.go)
	Follow          FollowStatus    `json:"follow"`
	Forwarding      GateStatus      `json:"forwarding"` // the forwarding gate (gate.go)
	Sync            SyncStatus      `json:"sync"`
	Conntrack       conntrack.Stats `json:"conntrack"`
	Seal            seal.Stats      `json:"seal"`
	Transport       udp.Stats       `json:"transport"`
	// Documents are the firewall ruleset and the files (documents.go).
	Documents  []DocumentStatus `json:"documents,omitempty"`
	ConfigSync confsync.Stats   `json:"config_sync,omitzero"`
}

// GroupStatus is one CARP group.
type GroupStatus struct {
	Name           string     `json:"name"`
	VHID           uint8      `json:"vhid"`
	Interface      string     `json:"interface"`
	State          string     `json:"state"`
	Demotion       int        `json:"demotion"`
	AdvertInterval string     `json:"advert_interval"`
	MasterDown     string     `json:"master_down"`
	CARP           carp.Stats `json:"carp"`
	VIP            vip.Stats  `json:"vip"`
	VIPErr         string     `json:"vip_error,omitempty"`
}

// FollowStatus is the state of the follow rule (carp.FollowGroup).
type FollowStatus struct {
	LinkDemotion bool   `json:"link_demotion"`
	Following    bool   `json:"following"`
	Hold         string `json:"hold"`
	Events       uint64 `json:"events"`
}

// followStatus reports f, which is nil while the daemon starts.
func followStatus(f *carp.FollowGroup) FollowStatus {
	if f == nil {
		return FollowStatus{Hold: "0s"}
	}
	st := f.Status()
	return FollowStatus{LinkDemotion: st.LinkDown, Following: st.Following, Hold: st.Hold.String(), Events: st.Events}
}

// SyncStatus summarises the engine; Engine has every counter.
type SyncStatus struct {
	PeersUp      int          `json:"peers_up"`
	Peers        []PeerStatus `json:"peers"`
	Records      int          `json:"records"`
	LocalRecords int          `json:"local_records"`
	External     int          `json:"external"`
	BulkDone     bool         `json:"bulk_done"`
	BulkExpected int          `json:"bulk_expected"`
	BulkReceived int          `json:"bulk_received"`
	Degraded     bool         `json:"degraded"`
	Demotion     int          `json:"demotion"`
	// Commits are the latest takeover commits, oldest first. Every group
	// commits on its promotion; the groups of one takeover run together
	// and share the work, so sum them.
	Commits []CommitStatus `json:"commits,omitempty"`
	Engine  pfsync.Stats   `json:"engine"`
}

// PeerStatus is one sync peer.
type PeerStatus struct {
	Node      uint32    `json:"node"`
	Up        bool      `json:"up"`
	LastHeard time.Time `json:"last_heard"`
	FramesIn  uint64    `json:"frames_in"`
	FramesOut uint64    `json:"frames_out"`
	Restarts  uint64    `json:"restarts"`
}

// CommitStatus is one commit of replicated state before a takeover.
type CommitStatus struct {
	VHID    uint8     `json:"vhid"`
	At      time.Time `json:"at"`
	Records int       `json:"records"` // replicated records committed into the kernel
	// Liberalized counts this node's own TCP flows switched to
	// BE_LIBERAL by conntrack.Backend.Takeover: their windows went stale
	// while the peer forwarded them. Usually none: the backend makes them
	// liberal as soon as they carry data.
	Liberalized int    `json:"liberalized"`
	Took        string `json:"took"`
	Err         string `json:"error,omitempty"`
}

// Masters returns the names of the groups in state MASTER.
func (s *Status) Masters() []string {
	var out []string
	for _, g := range s.Groups {
		if g.State == carp.Master.String() {
			out = append(out, g.Name)
		}
	}
	return out
}

// CommittedSince sums the records committed by the commits that started
// at or after t, and reports whether every group's commit has finished.
func (s *Status) CommittedSince(t time.Time) (records int, allGroups bool, errs []string) {
	seen := map[uint8]bool{}
	for _, c := range s.Sync.Commits {
		if c.At.Before(t) {
			continue
		}
		records += c.Records
		seen[c.VHID] = true
		if c.Err != "" {
			errs = append(errs, c.Err)
		}
	}
	return records, len(seen) == len(s.Groups), errs
}

// status collects the daemon's status.
func (d *daemon) status() *Status {
	st := &Status{Node: d.cfg.Node, Uptime: time.Since(d.started).Round(time.Millisecond).String(),
		StartedAsMaster: d.startedAsMaster, Goroutines: runtime.NumGoroutine(), Follow: followStatus(d.follow),
		Forwarding: d.gate.Status(), Maintenance: d.maintenanceStatus()}
	groups, tracks := d.running()
	st.Track = trackStatus(tracks)
	for _, gr := range groups {
		g := GroupStatus{Name: gr.cfg.Name, VHID: gr.cfg.VHID, Interface: gr.cfg.Interface,
			State: gr.group.State().String(), Demotion: gr.group.Demotion(),
			AdvertInterval: gr.group.AdvertInterval().String(), MasterDown: gr.group.MasterDownInterval().String(),
			CARP: gr.group.Stats()}
		if gr.fol != nil {
			g.VIP = gr.fol.Stats()
			if err := gr.fol.Err(); err != nil {
				g.VIPErr = err.Error()
			}
		}
		st.Groups = append(st.Groups, g)
	}
	es := d.engine.Stats()
	st.Sync = SyncStatus{PeersUp: es.PeersUp, Records: es.Records, LocalRecords: es.LocalRecords,
		External: es.External, BulkDone: es.BulkDone, BulkExpected: es.BulkExpected, BulkReceived: es.BulkReceived,
		Degraded: es.Degraded, Demotion: es.Demotion, Engine: es}
	for id, p := range es.Peers {
		st.Sync.Peers = append(st.Sync.Peers, PeerStatus{Node: uint32(id), Up: p.Up, LastHeard: p.LastHeard,
			FramesIn: p.FramesIn, FramesOut: p.FramesOut, Restarts: p.Restarts})
	}
	d.mu.Lock()
	st.Sync.Commits = append([]CommitStatus(nil), d.commits...)
	d.mu.Unlock()
	st.Conntrack = d.backend.Stats()
	st.Seal = d.sealer.Stats()
	st.Transport = d.tr.Stats()
	st.Documents, st.ConfigSync = d.docs.status(), d.docs.stats()
	return st
}

// controlServer answers every connection on a unix socket with the answer
// to its request (control.go) as JSON and closes it. A client that sends
// no request gets the status: connecting is asking.
type controlServer struct {
	ln     net.Listener
	path   string
	log    *slog.Logger
	handle func(req string) any
	wg     sync.WaitGroup
	once   sync.Once
	err    error
}

// listenControl serves only the status (get) on the socket at path.
func listenControl(path string, get func() *Status, log *slog.Logger) (*controlServer, error) {
	return listenControlRequests(path, func(string) any { return get() }, log)
}

// listenControlRequests creates the socket (mode 0600: the status reveals
// the topology, and the requests change the node) and starts serving
// handle. A stale socket left by a crashed run is replaced; any other file
// at path is an error. A missing parent directory (the runtime directory
// systemd would create) is created, mode 0755.
func listenControlRequests(path string, handle func(req string) any, log *slog.Logger) (*controlServer, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&fs.ModeSocket == 0 {
			return nil, fmt.Errorf("control socket %s: exists and is not a socket", path)
		}
		if c, err := net.Dial("unix", path); err == nil {
			c.Close()
			return nil, fmt.Errorf("control socket %s: another fwpair is running", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("control socket: %w", err)
		}
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &controlServer{ln: ln, path: path, log: log, handle: handle}
	s.wg.Add(1)
	go s.serve()
	return s, nil
}

func (s *controlServer) serve() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				s.log.Warn("fwpair: control socket", "err", err)
			}
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer c.Close()
			req, err := readRequest(c)
			if err != nil {
				s.log.Debug("fwpair: control socket: reading the request", "err", err)
				return
			}
			answer := s.handle(req)
			if err := c.SetWriteDeadline(time.Now().Add(5 * time.Second)); err != nil {
				return
			}
			if err := json.NewEncoder(c).Encode(answer); err != nil {
				s.log.Debug("fwpair: control socket: writing the answer", "err", err)
			}
		}()
	}
}

// Close stops serving, waits for the connections and removes the socket.
func (s *controlServer) Close() error {
	s.once.Do(func() {
		s.err = s.ln.Close()
		s.wg.Wait()
		if err := os.Remove(s.path); err != nil && !errors.Is(err, fs.ErrNotExist) && s.err == nil {
			s.err = err
		}
	})
	return s.err
}

// maxStatus bounds the status QueryStatus reads: a real one, with 16
// groups and the latest commits, is a few KiB; whatever listens on the path
// must not make the client read without end.
const maxStatus = 1 << 20

// QueryStatus asks the fwpair listening on the control socket at path for
// its status.
func QueryStatus(path string, timeout time.Duration) (*Status, error) {
	b, err := controlRequest(path, reqStatus, timeout)
	if err != nil {
		return nil, fmt.Errorf("fwpair: status: %w", err)
	}
	var st Status
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("fwpair: status: decoding: %w", err)
	}
	return &st, nil
}
