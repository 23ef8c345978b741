package main

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"time"
)

// node is one namespace on the bridge.
type node struct {
	name, ns, port string
	ip             netip.Addr
	mac            net.HardwareAddr // of eth0
}

type topology struct {
	prefix string
	sw     string
	nodes  []node
	made   []string // namespaces to delete
}

// newTopology creates <prefix>-sw with bridge br0 and nodes a and b
// (10.79.0.1 and .2 on eth0), each attached to br0.
func newTopology(prefix string) (*topology, error) {
	t := &topology{prefix: prefix, sw: prefix + "-sw"}
	if err := t.addNS(t.sw); err != nil {
		return t, err
	}
	// Bridged frames must not traverse the switch namespace's netfilter
	// (docs/interop.md, "br_netfilter"). The keys exist only while br_netfilter is
	// loaded; without it there is nothing to switch off.
	if _, err := os.Stat("/proc/sys/net/bridge"); err == nil {
		for _, k := range []string{"bridge-nf-call-iptables", "bridge-nf-call-ip6tables", "bridge-nf-call-arptables"} {
			if _, err := sh("ip", "netns", "exec", t.sw, "sysctl", "-qw", "net.bridge."+k+"=0"); err != nil {
				return t, err
			}
		}
	}
	if _, err := sh("ip", "-n", t.sw, "link", "add", "br0", "type", "bridge"); err != nil {
		return t, err
	}
	if _, err := sh("ip", "-n", t.sw, "link", "set", "br0", "up"); err != nil {
		return t, err
	}
	for i, name := range []string{"a", "b"} {
		n := node{name: name, ns: prefix + "-" + name, port: "p" + name,
			ip: netip.AddrFrom4([4]byte{10, 79, 0, byte(i + 1)})}
		if err := t.addNS(n.ns); err != nil {
			return t, err
		}
		for _, c := range [][]string{
			{"ip", "-n", t.sw, "link", "add", n.port, "type", "veth", "peer", "name", "eth0", "netns", n.ns},
			{"ip", "-n", t.sw, "link", "set", n.port, "master", "br0", "up"},
			{"ip", "-n", n.ns, "link", "set", "lo", "up"},
			{"ip", "-n", n.ns, "addr", "add", n.ip.String() + "/24", "dev", "eth0"},
			{"ip", "-n", n.ns, "link", "set", "eth0", "up"},
		} {
			if _, err := sh(c...); err != nil {
				return t, err
			}
		}
		if err := waitCarrier(n.ns); err != nil {
			return t, err
		}
		// ip netns exec mounts the namespace's own /sys.
		out, err := sh("ip", "netns", "exec", n.ns, "cat", "/sys/class/net/eth0/address")
		if err != nil {
			return t, err
		}
		if n.mac, err = net.ParseMAC(strings.TrimSpace(out)); err != nil {
			return t, err
		}
		t.nodes = append(t.nodes, n)
	}
	return t, nil
}

func (t *topology) addNS(name string) error {
	if _, err := sh("ip", "netns", "add", name); err != nil {
		return err
	}
	t.made = append(t.made, name)
	return nil
}

// setPort cuts or restores a node's switch port (a host crash, seen from
// the LAN).
func (t *topology) setPort(n node, up bool) error {
	state := "down"
	if up {
		state = "up"
	}
	_, err := sh("ip", "-n", t.sw, "link", "set", n.port, state)
	if err == nil && up {
		err = waitCarrier(n.ns)
	}
	return err
}

func (t *topology) destroy() {
	for _, ns := range slices.Backward(t.made) {
		if _, err := sh("ip", "netns", "del", ns); err != nil {
			fmt.Fprintln(os.Stderr, "failover: cleanup:", err)
		}
	}
}

// waitCarrier waits until eth0 in ns has carrier (linkwatch delays it).
func waitCarrier(ns string) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		out, err := sh("ip", "-n", ns, "link", "show", "eth0")
		if err == nil && strings.Contains(out, "LOWER_UP") && !strings.Contains(out, "NO-CARRIER") {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: eth0 has no carrier: %s", ns, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func sh(args ...string) (string, error) {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// dropAddr removes addr from eth0 in ns, whatever its prefix length, if
// it is there.
func dropAddr(ns, addr string) error {
	out, err := sh("ip", "-n", ns, "-o", "-4", "addr", "show", "dev", "eth0")
	if err != nil {
		return err
	}
	for _, f := range strings.Fields(out) {
		if strings.HasPrefix(f, addr+"/") {
			if _, err := sh("ip", "-n", ns, "addr", "del", f, "dev", "eth0"); err != nil {
				return err
			}
		}
	}
	return nil
}

// daemon is a carpd, ucarp or keepalived process in a namespace, in a
// process group of its own (keepalived's VRRP child is in it too).
type daemon struct {
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
}

// startDaemon runs args[0] with args[1:] in ns, its output in logPath.
func startDaemon(ns string, args []string, logPath string) (*daemon, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, err
	}
	d := &daemon{cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		cmd.Wait()
		f.Close()
		close(d.done)
	}()
	return d, nil
}

// signal sends sig to the daemon (keepalived's parent passes SIGTERM on to
// its VRRP child).
func (d *daemon) signal(sig syscall.Signal) error { return d.cmd.Process.Signal(sig) }

// signalGroup sends sig to the daemon's whole process group at once.
func (d *daemon) signalGroup(sig syscall.Signal) error { return syscall.Kill(-d.cmd.Process.Pid, sig) }

// kill ends the daemon's process group and waits for the daemon.
func (d *daemon) kill() {
	syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
	<-d.done
}

// waitLog waits until the daemon has logged a line containing s. The
// daemons offer nothing to wait on but their log: it is polled.
func (d *daemon) waitLog(ctx context.Context, s string) error {
	deadline := time.Now().Add(stateTimeout)
	for {
		b, err := os.ReadFile(d.logPath)
		if err != nil {
			return err
		}
		if strings.Contains(string(b), s) {
			return nil
		}
		select {
		case <-d.done:
			return fmt.Errorf("exited before logging %q:\n%s", s, b)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("did not log %q within %v:\n%s", s, stateTimeout, b)
		}
	}
}
