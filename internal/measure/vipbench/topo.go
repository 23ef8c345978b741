//go:build linux

package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// topology is the set of namespaces of one run: "sw" with bridge br0, and
// fw1, fw2 and client, each attached to br0 by a veth (eth0 inside, a port
// in sw).
type topology struct {
	prefix string
	ports  map[string]string // node -> switch-side port
	procs  []*proc
}

func newTopology(prefix string) (*topology, error) {
	tp := &topology{prefix: prefix, ports: map[string]string{}}
	for _, ns := range []string{"sw", "fw1", "fw2", "client"} {
		if err := tp.ip("", "netns", "add", tp.ns(ns)); err != nil {
			tp.close()
			return nil, err
		}
	}
	nodeSysctls := []string{
		"net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0",
		"net.ipv4.conf.all.arp_ignore=1", "net.ipv4.conf.all.arp_announce=2",
		"net.ipv4.conf.all.send_redirects=0", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0",
	}
	steps := [][]string{
		{"sw", "link", "add", "br0", "type", "bridge", "stp_state", "0"},
		{"sw", "link", "set", "br0", "up"},
	}
	for _, ns := range []string{"sw", "fw1", "fw2", "client"} {
		steps = append(steps, []string{ns, "link", "set", "lo", "up"})
	}
	for _, n := range []struct{ ns, addr string }{{"fw1", fw1Addr}, {"fw2", fw2Addr}, {"client", cliAddr}} {
		port := n.ns + "-p"
		tp.ports[n.ns] = port
		steps = append(steps,
			[]string{"", "link", "add", "eth0", "netns", tp.ns(n.ns), "type", "veth", "peer", "name", port, "netns", tp.ns("sw")},
			[]string{"sw", "link", "set", port, "master", "br0"},
			[]string{"sw", "link", "set", port, "up"},
			[]string{n.ns, "addr", "add", n.addr + prefixLen, "dev", "eth0"},
			[]string{n.ns, "link", "set", "eth0", "up"},
		)
	}
	for _, s := range steps {
		if err := tp.ip(s[0], s[1:]...); err != nil {
			tp.close()
			return nil, err
		}
	}
	for _, ns := range []string{"fw1", "fw2", "client"} {
		if out, err := exec.Command("ip", append([]string{"netns", "exec", tp.ns(ns), "sysctl", "-q", "-w"}, nodeSysctls...)...).CombinedOutput(); err != nil {
			tp.close()
			return nil, fmt.Errorf("sysctl in %s: %v: %s", ns, err, out)
		}
	}
	if _, err := exec.Command("ip", "netns", "exec", tp.ns("sw"), "sh", "-c",
		"for f in /proc/sys/net/bridge/bridge-nf-call-*; do [ -e $f ] && echo 0 > $f; done; true").CombinedOutput(); err != nil {
		tp.close()
		return nil, err
	}
	// Wait for carrier on every port (linkwatch delays it).
	deadline := time.Now().Add(10 * time.Second)
	for ns, port := range tp.ports {
		for {
			sw, _ := exec.Command("ip", "-n", tp.ns("sw"), "-o", "link", "show", port).Output()
			node, _ := exec.Command("ip", "-n", tp.ns(ns), "-o", "link", "show", "eth0").Output()
			if strings.Contains(string(sw), "state UP") && strings.Contains(string(node), "state UP") {
				break
			}
			if time.Now().After(deadline) {
				tp.close()
				return nil, fmt.Errorf("%s: link not up after 10s", ns)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return tp, nil
}

func (tp *topology) ns(short string) string { return tp.prefix + "-" + short }

// ip runs ip(8), in namespace ns unless ns is empty.
func (tp *topology) ip(ns string, args ...string) error {
	if ns != "" {
		args = append([]string{"-n", tp.ns(ns)}, args...)
	}
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

// close kills every process and deletes the namespaces.
func (tp *topology) close() {
	for _, p := range tp.procs {
		p.kill()
	}
	for _, ns := range []string{"client", "fw2", "fw1", "sw"} {
		exec.Command("ip", "netns", "del", tp.ns(ns)).Run()
	}
}

// proc is a background program inside a namespace with its output captured
// line by line.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}

	mu    sync.Mutex
	out   []string
	added chan struct{}
}

func (tp *topology) start(ns, name string, args ...string) (*proc, error) {
	p := &proc{name: name, done: make(chan struct{}), added: make(chan struct{}, 1)}
	p.cmd = exec.Command("ip", append([]string{"netns", "exec", tp.ns(ns), name}, args...)...)
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	p.cmd.Stdout, p.cmd.Stderr = w, w
	if err := p.cmd.Start(); err != nil {
		r.Close()
		w.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	w.Close()
	tp.procs = append(tp.procs, p)
	go func() {
		p.collect(r)
		p.cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) collect(r io.ReadCloser) {
	defer r.Close()
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		p.mu.Lock()
		p.out = append(p.out, sc.Text())
		p.mu.Unlock()
		select {
		case p.added <- struct{}{}:
		default:
		}
	}
}

func (p *proc) lines() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.out)
}

// waitLine waits for a line with index >= from containing substr.
func (p *proc) waitLine(from int, substr string, timeout time.Duration) (string, error) {
	deadline := time.After(timeout)
	for {
		p.mu.Lock()
		for _, l := range p.out[min(from, len(p.out)):] {
			if strings.Contains(l, substr) {
				p.mu.Unlock()
				return l, nil
			}
		}
		out := strings.Join(p.out, "\n")
		p.mu.Unlock()
		select {
		case <-p.added:
		case <-p.done:
			select {
			case <-p.added:
				continue
			default:
			}
			return "", fmt.Errorf("%s exited without printing %q:\n%s", p.name, substr, out)
		case <-deadline:
			return "", fmt.Errorf("%s did not print %q within %v:\n%s", p.name, substr, timeout, out)
		}
	}
}

// kill sends SIGKILL to the process group and waits for the process.
func (p *proc) kill() {
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// interrupt sends SIGINT and waits for the process to exit.
func (p *proc) interrupt() error {
	if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
		return err
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(10 * time.Second):
		p.kill()
		return errors.New(p.name + " ignored SIGINT")
	}
}
