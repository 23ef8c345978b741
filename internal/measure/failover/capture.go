package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// capture is tcpdump on the bridge, keeping the timestamp and source of
// every advert (IP protocol 112) and of every ARP packet that announces
// the virtual address.
type capture struct {
	cmd *exec.Cmd

	mu      sync.Mutex
	pkts    []packet
	changed chan struct{}
	done    chan struct{}
}

// packet is an advert from src, or an ARP announcement of the virtual
// address sent by mac.
type packet struct {
	at  time.Time
	src netip.Addr       // advert: the IP source
	mac net.HardwareAddr // ARP announcement: the Ethernet source
}

// parseLine parses a line of `tcpdump -e -n -tt`:
//
//	1763780000.123456 02:aa:bb:cc:dd:01 > 01:00:5e:00:00:12, ethertype IPv4 (0x0800), length 54: 10.79.0.1 > 224.0.0.18: VRRPv3, ...
//	1763780000.123456 02:aa:bb:cc:dd:02 > ff:ff:ff:ff:ff:ff, ethertype ARP (0x0806), length 42: Request who-has 10.79.0.254 tell 10.79.0.254, length 28
//	1763780000.123456 02:aa:bb:cc:dd:02 > ff:ff:ff:ff:ff:ff, ethertype ARP (0x0806), length 42: Request who-has 10.79.0.254 (ff:ff:ff:ff:ff:ff) tell 10.79.0.254, length 28
//	1763780000.123456 02:aa:bb:cc:dd:02 > ff:ff:ff:ff:ff:ff, ethertype ARP (0x0806), length 42: Reply 10.79.0.254 is-at 02:aa:bb:cc:dd:02, length 28
//
// An ARP packet counts only if it announces addr (a gratuitous request or
// reply whose sender is addr).
func parseLine(line, addr string) (packet, bool) {
	head, body, ok := strings.Cut(line, ": ")
	f := strings.Fields(head)
	if !ok || len(f) < 5 || f[2] != ">" || f[4] != "ethertype" {
		return packet{}, false
	}
	sec, frac, _ := strings.Cut(f[0], ".")
	s, err1 := strconv.ParseInt(sec, 10, 64)
	us, err2 := strconv.ParseInt(frac, 10, 64)
	mac, err3 := net.ParseMAC(f[1])
	if err1 != nil || err2 != nil || err3 != nil || len(frac) != 6 {
		return packet{}, false
	}
	p := packet{at: time.Unix(s, us*1000)}
	switch f[5] {
	case "IPv4":
		b := strings.Fields(body)
		src, err := netip.ParseAddr(strings.TrimSuffix(firstOr(b), ","))
		if err != nil || len(b) < 3 || b[1] != ">" {
			return packet{}, false
		}
		p.src = src
	case "ARP":
		request := strings.HasPrefix(body, "Request who-has "+addr+" ") && strings.Contains(body, " tell "+addr+",")
		if !request && !strings.HasPrefix(body, "Reply "+addr+" is-at ") {
			return packet{}, false
		}
		p.mac = mac
	default:
		return packet{}, false
	}
	return p, true
}

func firstOr(f []string) string {
	if len(f) == 0 {
		return ""
	}
	return f[0]
}

func (t *topology) capture(logPath string) (*capture, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("ip", "netns", "exec", t.sw, "tcpdump", "-i", "br0", "-e", "-n", "-tt", "-l",
		"--immediate-mode", "ip proto 112 or arp")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &capture{cmd: cmd, changed: make(chan struct{}), done: make(chan struct{})}
	listening := make(chan struct{})
	var logMu sync.Mutex
	go func() {
		sc := bufio.NewScanner(stderr)
		once := sync.OnceFunc(func() { close(listening) })
		for sc.Scan() {
			logMu.Lock()
			fmt.Fprintln(logf, sc.Text())
			logMu.Unlock()
			if strings.Contains(sc.Text(), "listening on") {
				once()
			}
		}
		once()
	}()
	go func() {
		defer close(c.done)
		defer logf.Close()
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			logMu.Lock()
			fmt.Fprintln(logf, sc.Text())
			logMu.Unlock()
			p, ok := parseLine(sc.Text(), vip)
			if !ok {
				continue
			}
			c.mu.Lock()
			c.pkts = append(c.pkts, p)
			close(c.changed)
			c.changed = make(chan struct{})
			c.mu.Unlock()
		}
	}()
	select {
	case <-listening:
	case <-time.After(stateTimeout):
		c.stop()
		return nil, errors.New("tcpdump did not start")
	}
	return c, nil
}

func (c *capture) stop() {
	syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
	c.cmd.Wait()
	<-c.done
}

// waitFor returns the time of the n-th packet captured after since for
// which match holds.
func (c *capture) waitFor(ctx context.Context, since time.Time, n int, what string, match func(packet) bool) (time.Time, error) {
	deadline := time.After(stateTimeout)
	for {
		c.mu.Lock()
		seen := 0
		for _, p := range c.pkts {
			if p.at.After(since) && match(p) {
				seen++
				if seen == n {
					c.mu.Unlock()
					return p.at, nil
				}
			}
		}
		ch := c.changed
		c.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-deadline:
			return time.Time{}, fmt.Errorf("%d %s after %v not seen within %v", n, what, since.Format(time.TimeOnly), stateTimeout)
		}
	}
}

// wait returns the time of the n-th advert from src captured after since.
func (c *capture) wait(ctx context.Context, src netip.Addr, since time.Time, n int) (time.Time, error) {
	return c.waitFor(ctx, since, n, fmt.Sprintf("adverts from %v", src), func(p packet) bool { return p.src == src })
}

// waitARP returns the time of the first announcement of the virtual
// address from mac after since.
func (c *capture) waitARP(ctx context.Context, mac net.HardwareAddr, since time.Time) (time.Time, error) {
	return c.waitFor(ctx, since, 1, fmt.Sprintf("ARP announcements from %v", mac), func(p packet) bool { return bytes.Equal(p.mac, mac) })
}

// first returns the first advert from src after since, if any.
func (c *capture) first(src netip.Addr, since time.Time) (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range c.pkts {
		if p.src == src && p.at.After(since) {
			return p.at, true
		}
	}
	return time.Time{}, false
}

// lastBefore returns the last advert from src before t.
func (c *capture) lastBefore(src netip.Addr, t time.Time) (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range slices.Backward(c.pkts) {
		if p.src == src && p.at.Before(t) {
			return p.at, true
		}
	}
	return time.Time{}, false
}
