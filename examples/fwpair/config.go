package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/gocarp/gocarp/carp"
	"github.com/gocarp/gocarp/pfsync"
	"github.com/gocarp/gocarp/pfsync/udp"
)

// Config is the fwpair configuration file (JSON). Every field is
// documented in doc.go; fwpair.example.json is a complete example.
type Config struct {
	Node          uint32 `json:"node"`
	ControlSocket string `json:"control_socket"`
	LogLevel      string `json:"log_level"`
	// LogFormat is "text" or "json"; the -log-format flag, when given,
	// wins. Empty means text.
	LogFormat string          `json:"log_format,omitempty"`
	CARP      CARPConfig      `json:"carp"`
	Groups    []GroupConfig   `json:"groups"`
	Sync      SyncConfig      `json:"sync"`
	Conntrack ConntrackConfig `json:"conntrack"`
	Follow    FollowConfig    `json:"follow"`
	Metrics   MetricsConfig   `json:"metrics,omitzero"`
	Track     []TrackConfig   `json:"track,omitempty"` // health checks (trackers.go)

	Forwarding ForwardingConfig `json:"forwarding"` // the forwarding gate (gate.go)

	// The replicated documents (documents_config.go).
	Firewall   FirewallConfig   `json:"firewall,omitzero"`
	Files      []FileConfig     `json:"files,omitempty"`
	ConfigSync ConfigSyncConfig `json:"config_sync,omitzero"`
	// File is the file LoadConfig read it from, which a reload reads
	// again; not a key of the file.
	File string `json:"-"`
}

// CARPConfig holds the settings shared by every group.
type CARPConfig struct {
	AdvBase       uint8    `json:"advbase"`
	AdvSkew       uint8    `json:"advskew"`
	Password      string   `json:"password"`
	Preempt       bool     `json:"preempt"`
	StartAsMaster bool     `json:"start_as_master"`
	StartWait     Duration `json:"start_wait"`
	DeadRatio     int      `json:"dead_ratio"`
	// Interval is sub-second CARP: advbase 0 and the advskew nearest to
	// it, instead of AdvBase and AdvSkew (validateInterval).
	Interval Duration `json:"interval,omitzero"`

	// Protocol is "carp" (the default) or "vrrp3"; with "vrrp3" Priority
	// and AdvertInt replace advbase, advskew, password and dead_ratio.
	Protocol  string   `json:"protocol,omitempty"`
	Priority  uint8    `json:"priority,omitempty"`
	AdvertInt Duration `json:"advert_int,omitzero"`
	// Accept is VRRPv3's accept mode (vrrp3 only): absent or true, a
	// master accepts packets addressed to the virtual addresses
	// (keepalived's default); false drops them (keepalived's no_accept;
	// accept.go).
	Accept *bool `json:"accept,omitempty"`
}

// GroupConfig is one CARP group (one vhid on one interface).
type GroupConfig struct {
	Name      string       `json:"name"`
	VHID      uint8        `json:"vhid"`
	Interface string       `json:"interface"`
	Addresses []netip.Addr `json:"addresses"`
	Source    netip.Addr   `json:"source"`
	// Peers are unicast peers (peers.go); empty means multicast.
	Peers []netip.Addr `json:"peers,omitempty"`
}

// SyncConfig configures state replication over the dedicated sync link.
type SyncConfig struct {
	Interface     string     `json:"interface"`
	Local         string     `json:"local"`
	Peers         []SyncPeer `json:"peers"`
	KeyFile       string     `json:"key_file"`
	BootFile      string     `json:"boot_file"`
	Commit        string     `json:"commit"`
	CommitTimeout Duration   `json:"commit_timeout"`
	Heartbeat     Duration   `json:"heartbeat"`
	FlushDelay    Duration   `json:"flush_delay"`
	BulkRate      int        `json:"bulk_rate"`
}

// SyncPeer is the other node of the pair.
type SyncPeer struct {
	Node    uint32 `json:"node"`
	Address string `json:"address"`
}

// ConntrackConfig selects the kernel flows that are replicated.
type ConntrackConfig struct {
	Protocols   []string       `json:"protocols"`
	AssuredOnly bool           `json:"assured_only"`
	Ignore      []netip.Prefix `json:"ignore"`
	Resync      Duration       `json:"resync"`
}

// FollowConfig tunes the rule that keeps the groups together
// (carp.FollowConfig).
type FollowConfig struct {
	Hold    Duration `json:"hold"`
	MaxHold Duration `json:"max_hold"`
}

// MetricsConfig configures the Prometheus endpoint (metrics.go).
type MetricsConfig struct {
	Listen string `json:"listen"` // IP address and port; empty is off
}

// Duration is a time.Duration written as a Go duration string ("1.5s",
// "200ms") in the configuration file.
type Duration struct{ time.Duration }

// UnmarshalJSON accepts a duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string like \"1s\": %s", b)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	d.Duration = v
	return nil
}

// MarshalJSON writes the duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// Defaults of the zero values.
const (
	defaultControlSocket = "/run/fwpair/fwpair.sock" // fwpair.service's RuntimeDirectory
	defaultStartWait     = 3 * time.Second
	defaultCommitTimeout = 2 * time.Second
	defaultFollowHold    = 10 * time.Second
	defaultFollowMaxHold = 5 * time.Minute
	maxGroups            = 16
)

// protocolNumbers maps the names accepted in conntrack.protocols.
var protocolNumbers = map[string]uint8{"icmp": 1, "tcp": 6, "udp": 17, "dccp": 33, "gre": 47, "icmpv6": 58, "sctp": 132}

// LoadConfig reads and validates the configuration file at path.
func LoadConfig(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("fwpair: config: %w", err)
	}
	defer f.Close()
	c, err := ParseConfig(f)
	if err != nil {
		return nil, fmt.Errorf("fwpair: config %s: %w", path, err)
	}
	c.File = path
	return c, nil
}

// ParseConfig decodes a configuration (unknown fields are errors), fills in
// the defaults and validates it.
func ParseConfig(r io.Reader) (*Config, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("reading: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var c Config
	if err := dec.Decode(&c); err != nil {
		return nil, decodeError(data, err) // configerr.go
	}
	if dec.More() {
		return nil, errors.New("decoding: trailing data after the configuration object")
	}
	if err := c.setDefaultsAndValidate(); err != nil {
		return nil, err
	}
	return &c, nil
}

func rangeErr(field string, v any, allowed string) error {
	return fmt.Errorf("%s %v out of range %s", field, v, allowed)
}

func (c *Config) setDefaultsAndValidate() error {
	if c.Node == 0 {
		return rangeErr("node", c.Node, "1-4294967295")
	}
	if c.ControlSocket == "" {
		c.ControlSocket = defaultControlSocket
	}
	switch c.LogLevel {
	case "":
		c.LogLevel = "info"
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("log_level %q not one of debug, info, warn, error", c.LogLevel)
	}
	switch c.LogFormat {
	case "", "text", "json":
	default:
		return fmt.Errorf("log_format %q not one of text, json", c.LogFormat)
	}

	// carp
	cc := &c.CARP
	if err := cc.validateProtocol(); err != nil {
		return err
	}
	if err := cc.validateInterval(); err != nil {
		return err
	}
	if cc.AdvBase == 0 && cc.Protocol != "vrrp3" && cc.Interval.Duration == 0 {
		cc.AdvBase = 1
	}
	if cc.AdvSkew > 254 {
		return rangeErr("carp.advskew", cc.AdvSkew, "0-254")
	}
	if len(cc.Password) > carp.MaxPasswordLen {
		return fmt.Errorf("carp.password length %d out of range 0-%d bytes", len(cc.Password), carp.MaxPasswordLen)
	}
	if cc.DeadRatio < 0 || cc.DeadRatio > 255 {
		return rangeErr("carp.dead_ratio", cc.DeadRatio, "0-255 (0 means 3)")
	}
	if cc.StartWait.Duration == 0 {
		cc.StartWait.Duration = defaultStartWait
	}
	if cc.StartWait.Duration < 0 || cc.StartWait.Duration > time.Minute {
		return rangeErr("carp.start_wait", cc.StartWait.Duration, "0-1m")
	}

	// groups
	if len(c.Groups) == 0 || len(c.Groups) > maxGroups {
		return rangeErr("groups: count", len(c.Groups), fmt.Sprintf("1-%d", maxGroups))
	}
	vhids := map[uint8]bool{}
	ifaces := map[string]bool{}
	for i := range c.Groups {
		g := &c.Groups[i]
		where := fmt.Sprintf("groups[%d]", i)
		if g.VHID == 0 {
			return rangeErr(where+".vhid", g.VHID, "1-255")
		}
		if vhids[g.VHID] {
			return fmt.Errorf("%s.vhid %d used by two groups", where, g.VHID)
		}
		vhids[g.VHID] = true
		if g.Name == "" {
			g.Name = fmt.Sprintf("vhid%d", g.VHID)
		}
		if err := checkIfName(where+".interface", g.Interface); err != nil {
			return err
		}
		if ifaces[g.Interface] {
			return fmt.Errorf("%s.interface %q used by two groups", where, g.Interface)
		}
		ifaces[g.Interface] = true
		if len(g.Addresses) == 0 {
			return fmt.Errorf("%s.addresses: at least one virtual address required", where)
		}
		seen := map[netip.Addr]bool{}
		for j, a := range g.Addresses {
			if !a.IsValid() || a.IsUnspecified() || a.IsMulticast() || a.IsLoopback() {
				return fmt.Errorf("%s.addresses[%d] %v is not a unicast address", where, j, a)
			}
			if seen[a] {
				return fmt.Errorf("%s.addresses[%d] %v listed twice", where, j, a)
			}
			seen[a] = true
		}
		if g.Source.IsValid() && !g.Source.Is4() {
			return fmt.Errorf("%s.source %v is not an IPv4 address", where, g.Source)
		}
		if err := checkGroupPeers(where, g); err != nil {
			return err
		}
	}

	// sync
	s := &c.Sync
	if err := checkIfName("sync.interface", s.Interface); err != nil {
		return err
	}
	if ifaces[s.Interface] {
		return fmt.Errorf("sync.interface %q is also a group interface; use a dedicated link", s.Interface)
	}
	local, err := parseAddrPort(s.Local)
	if err != nil {
		return fmt.Errorf("sync.local %q: %w", s.Local, err)
	}
	if len(s.Peers) == 0 || len(s.Peers) > 16 {
		return rangeErr("sync.peers: count", len(s.Peers), "1-16")
	}
	nodes := map[uint32]bool{c.Node: true}
	for i, p := range s.Peers {
		where := fmt.Sprintf("sync.peers[%d]", i)
		if p.Node == 0 {
			return rangeErr(where+".node", p.Node, "1-4294967295")
		}
		if nodes[p.Node] {
			return fmt.Errorf("%s.node %d is not unique (node is %d)", where, p.Node, c.Node)
		}
		nodes[p.Node] = true
		ap, err := parseAddrPort(p.Address)
		if err != nil {
			return fmt.Errorf("%s.address %q: %w", where, p.Address, err)
		}
		if ap.Addr().Is4() != local.Addr().Is4() {
			return fmt.Errorf("%s.address %v is not of sync.local's family", where, ap)
		}
	}
	if s.KeyFile == "" {
		return errors.New("sync.key_file required: the sync link is always sealed (make one with fwpair -genkey FILE)")
	}
	if s.BootFile == "" {
		return errors.New("sync.boot_file required: the boot counter must persist across restarts")
	}
	if _, err := commitMode(s.Commit); err != nil {
		return err
	}
	if s.Commit == "" {
		s.Commit = pfsync.CommitDirect.String()
	}
	if s.CommitTimeout.Duration == 0 {
		s.CommitTimeout.Duration = defaultCommitTimeout
	}
	if d := s.CommitTimeout.Duration; d < 100*time.Millisecond || d > time.Minute {
		return rangeErr("sync.commit_timeout", d, "100ms-1m")
	}
	if d := s.Heartbeat.Duration; d != 0 && (d < 10*time.Millisecond || d > time.Minute) {
		return rangeErr("sync.heartbeat", d, "10ms-1m (0 means 1s)")
	}
	if d := s.FlushDelay.Duration; d != 0 && (d < time.Millisecond || d > time.Second) {
		return rangeErr("sync.flush_delay", d, "1ms-1s (0 means 100ms)")
	}
	if s.BulkRate < 0 || s.BulkRate > 10000000 {
		return rangeErr("sync.bulk_rate", s.BulkRate, "0-10000000 (0 means 2000 frames/s)")
	}

	if err := c.validateDocuments(); err != nil {
		return err
	}

	// conntrack
	for i, p := range c.Conntrack.Protocols {
		if _, ok := protocolNumbers[strings.ToLower(p)]; !ok {
			return fmt.Errorf("conntrack.protocols[%d] %q not one of icmp, tcp, udp, dccp, gre, icmpv6, sctp", i, p)
		}
	}
	for i, p := range c.Conntrack.Ignore {
		if !p.IsValid() {
			return fmt.Errorf("conntrack.ignore[%d] is not a prefix", i)
		}
	}
	if d := c.Conntrack.Resync.Duration; d > 0 && (d < time.Second || d > 24*time.Hour) {
		return rangeErr("conntrack.resync", d, "1s-24h (0 means 1m, negative disables)")
	}

	// metrics
	if l := c.Metrics.Listen; l != "" {
		if _, err := netip.ParseAddrPort(l); err != nil {
			return fmt.Errorf("metrics.listen %q is not an IP address and port (e.g. \"127.0.0.1:9310\")", l)
		}
	}

	if err := c.validateTracks(); err != nil {
		return err
	}

	// follow
	f := &c.Follow
	if f.Hold.Duration == 0 {
		f.Hold.Duration = defaultFollowHold
	}
	if f.MaxHold.Duration == 0 {
		f.MaxHold.Duration = defaultFollowMaxHold
	}
	if d := f.Hold.Duration; d < 100*time.Millisecond || d > time.Hour {
		return rangeErr("follow.hold", d, "100ms-1h")
	}
	if d := f.MaxHold.Duration; d < f.Hold.Duration || d > 24*time.Hour {
		return rangeErr("follow.max_hold", d, fmt.Sprintf("%v-24h (at least follow.hold)", f.Hold.Duration))
	}
	return nil
}

// checkIfName checks an interface name against the kernel's IFNAMSIZ.
func checkIfName(field, name string) error {
	if name == "" || len(name) > 15 || strings.ContainsAny(name, "/ \t\n") {
		return fmt.Errorf("%s %q is not an interface name (1-15 bytes, no '/' or spaces)", field, name)
	}
	return nil
}

// parseAddrPort parses "addr:port"; a missing port means udp.DefaultPort.
func parseAddrPort(s string) (netip.AddrPort, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		return netip.AddrPortFrom(a, udp.DefaultPort), nil
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return netip.AddrPort{}, errors.New("want an address or address:port")
	}
	if ap.Port() == 0 {
		return netip.AddrPort{}, errors.New("port 0 out of range 1-65535")
	}
	if ap.Addr().IsUnspecified() {
		return netip.AddrPort{}, errors.New("unspecified address; give the node's address on the sync link")
	}
	return ap, nil
}

// commitMode maps sync.commit to the engine's CommitMode; empty means
// direct.
func commitMode(s string) (pfsync.CommitMode, error) {
	switch s {
	case pfsync.CommitOnTakeover.String():
		return pfsync.CommitOnTakeover, nil
	case "", pfsync.CommitDirect.String():
		return pfsync.CommitDirect, nil
	}
	return 0, fmt.Errorf("sync.commit %q not one of on-takeover, direct", s)
}

// protocols returns the IP protocol numbers of conntrack.protocols.
func (c *ConntrackConfig) protocols() []uint8 {
	var out []uint8
	for _, p := range c.Protocols {
		out = append(out, protocolNumbers[strings.ToLower(p)])
	}
	return out
}

// String returns the configuration as indented JSON (the password is
// masked), for -check.
func (c *Config) String() string {
	cp := *c
	if cp.CARP.Password != "" {
		cp.CARP.Password = "********"
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	if err := enc.Encode(&cp); err != nil {
		return err.Error()
	}
	return b.String()
}

// Bounds of carp.interval. Below 10 ms the master-down interval (three
// adverts) is shorter than the scheduling delays of a busy host, so a
// backup would take over from a live master; 992 ms is advskew 254, the
// longest interval advbase 0 carries (longer: carp.advbase, carp.advskew).
const (
	minInterval = 10 * time.Millisecond
	maxInterval = 254 * time.Second / 256
)

// validateInterval checks carp.interval, which sets advbase 0 and the
// advskew nearest to it (docs/sub-second.md), and so excludes both.
func (cc *CARPConfig) validateInterval() error {
	d := cc.Interval.Duration
	switch {
	case d == 0:
		return nil
	case d < minInterval || d > maxInterval:
		return rangeErr("carp.interval", d, "10ms-992ms (rounded to 1/256 s; longer: carp.advbase, carp.advskew)")
	case cc.AdvBase != 0 || cc.AdvSkew != 0:
		return fmt.Errorf("carp.interval %v set with carp.advbase %d and carp.advskew %d, want them unset (carp.interval sets both)", d, cc.AdvBase, cc.AdvSkew)
	}
	return nil
}

// intervalSkew returns the advskew whose interval with advbase 0 is
// nearest to d: 100 ms is 25.6/256 s, so 26 (101.6 ms).
func intervalSkew(d time.Duration) uint8 {
	const tick = time.Second / 256
	return uint8((d + tick/2) / tick)
}

// validateProtocol checks carp.protocol and the keys that belong to one
// protocol only, and fills in the VRRPv3 defaults.
func (cc *CARPConfig) validateProtocol() error {
	switch cc.Protocol {
	case "", "carp":
		if cc.Priority != 0 {
			return fmt.Errorf("carp.priority %d set with carp.protocol carp, want it unset (vrrp3 only)", cc.Priority)
		}
		if cc.AdvertInt.Duration != 0 {
			return fmt.Errorf("carp.advert_int %v set with carp.protocol carp, want it unset (vrrp3 only)", cc.AdvertInt.Duration)
		}
		if cc.Accept != nil {
			return fmt.Errorf("carp.accept %v set with carp.protocol carp, want it unset (vrrp3 only: a CARP master accepts)", *cc.Accept)
		}
		return nil
	case "vrrp3":
	default:
		return fmt.Errorf("carp.protocol %q not one of carp, vrrp3", cc.Protocol)
	}
	for _, k := range []struct {
		key string
		set bool
	}{
		{"carp.advbase", cc.AdvBase != 0},
		{"carp.advskew", cc.AdvSkew != 0},
		{"carp.password", cc.Password != ""},
		{"carp.dead_ratio", cc.DeadRatio != 0},
		{"carp.interval", cc.Interval.Duration != 0},
	} {
		if k.set {
			return fmt.Errorf("%s set with carp.protocol vrrp3, want it unset (VRRPv3 has no password; use carp.priority and carp.advert_int)", k.key)
		}
	}
	if cc.Priority == 0 {
		cc.Priority = carp.DefaultPriority
	}
	if cc.Priority > 254 {
		return rangeErr("carp.priority", cc.Priority, "1-254")
	}
	d := cc.AdvertInt.Duration
	if d == 0 {
		cc.AdvertInt.Duration = time.Second
	} else if d < carp.MinAdvertInterval || d > carp.MaxAdvertInterval || d%carp.MinAdvertInterval != 0 {
		return rangeErr("carp.advert_int", d, "10ms-40.95s in steps of 10ms")
	}
	return nil
}

// groupConfig completes c with the protocol and its timing. With VRRPv3 a
// demotion (the sync engine's, the follow rule's) ranks a node below every
// undemoted one, as it does with CARP (carp.Config.DemotionWeight 255), so
// that the pair's guarantees hold in either mode.
func (cc *CARPConfig) groupConfig(c carp.Config) carp.Config {
	if cc.Protocol == "vrrp3" {
		c.Protocol = carp.ProtocolVRRPv3
		c.Priority = cc.Priority
		c.AdvertInterval = cc.AdvertInt.Duration
		c.DemotionWeight = 255
		return c
	}
	c.AdvBase = cc.AdvBase
	c.AdvSkew = cc.AdvSkew
	if cc.Interval.Duration != 0 {
		c.AdvBase, c.ZeroAdvBase, c.AdvSkew = 0, true, intervalSkew(cc.Interval.Duration)
	}
	c.Password = []byte(cc.Password)
	c.DeadRatio = cc.DeadRatio
	return c
}
