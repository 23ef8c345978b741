//go:build linux

package netns

import (
	"fmt"
	"path/filepath"
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
