//go:build linux

package netns

import (
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"time"
)

// Capture is a running tcpdump writing a pcap file.
type Capture struct {
	// Path is the pcap file.
	Path string
	p    *Process
}

// StartCapture runs tcpdump on ifname inside the namespace, writing every
// frame matching the BPF filter expression to a pcap file in the test's
// temporary directory. It returns once tcpdump reports that it is listening,
// so traffic generated afterwards is captured. count > 0 makes tcpdump exit
// by itself after that many packets (tcpdump -c); see Wait and Stop.
// Packets are written unbuffered (--immediate-mode -U).
func (n *NS) StartCapture(ifname string, count int, filter ...string) *Capture {
	n.t.Helper()
	RequireBinary(n.t, "tcpdump")
	path := filepath.Join(n.t.TempDir(), fmt.Sprintf("%s-%s.pcap", n.Short, ifname))
	args := []string{"-i", ifname, "-n", "-U", "--immediate-mode", "-w", path}
	if count > 0 {
		args = append(args, "-c", strconv.Itoa(count))
	}
	args = append(args, filter...)
	p := n.Start("tcpdump", args...)
	if _, _, err := p.WaitLine(0, "listening on", 10*time.Second); err != nil {
		n.t.Fatalf("netns: %v", err)
	}
	return &Capture{Path: path, p: p}
}

// Wait waits until tcpdump exits by itself (after count packets) and
// returns an error if it does not within timeout.
func (c *Capture) Wait(timeout time.Duration) error {
	select {
	case <-c.p.Done():
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("netns: tcpdump did not exit within %v; output: %q", timeout, c.p.Output())
	}
}

// Stop ends the capture with SIGINT (tcpdump flushes the file and prints
// its statistics) and waits for tcpdump to exit.
func (c *Capture) Stop() error {
	select {
	case <-c.p.Done():
		return nil
	default:
	}
	if err := c.p.Signal(syscall.SIGINT); err != nil {
		return fmt.Errorf("netns: stop tcpdump: %w", err)
	}
	return c.Wait(10 * time.Second)
}

// Output returns tcpdump's messages (including "N packets captured").
func (c *Capture) Output() []string { return c.p.Output() }

// AdvertSourceMAC reads the Ethernet frames queued on c (an AF_PACKET
// socket, e.g. mdlayher/packet's) until the first CARP or VRRP advert (IP
// protocol or IPv6 next header 112) and returns its source MAC. It waits
// for it up to wait; other frames are skipped.
func AdvertSourceMAC(c interface {
	SetReadDeadline(time.Time) error
	ReadFrom([]byte) (int, net.Addr, error)
}, wait time.Duration) (net.HardwareAddr, error) {
	if err := c.SetReadDeadline(time.Now().Add(wait)); err != nil {
		return nil, err
	}
	buf := make([]byte, 2048)
	for {
		n, _, err := c.ReadFrom(buf)
		if err != nil {
			return nil, fmt.Errorf("no advert frame seen: %w", err)
		}
		f := buf[:n]
		proto := -1
		switch {
		case n >= 14+20 && f[12] == 0x08 && f[13] == 0x00:
			proto = int(f[14+9])
		case n >= 14+40 && f[12] == 0x86 && f[13] == 0xdd:
			proto = int(f[14+6])
		}
		if proto == 112 {
			return net.HardwareAddr(slices.Clone(f[6:12])), nil
		}
	}
}
