package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
)

// The control socket's requests. A client writes one line and reads one
// JSON object until the daemon closes the connection:
//
//	status            the Status (also what a client that writes nothing
//	                  gets, after requestWait: connecting is asking)
//	reload            re-read the configuration file and apply it: a Reply
//	maintenance on    switch persistent maintenance mode: a Reply
//	maintenance off
const (
	reqStatus         = "status"
	reqReload         = "reload"
	reqMaintenanceOn  = "maintenance on"
	reqMaintenanceOff = "maintenance off"
)

// requestWait is how long the daemon waits for a request line before it
// answers with the status, for clients that only connect and read (as
// every client did before there were requests).
const requestWait = 200 * time.Millisecond

// maxRequest bounds a request line.
const maxRequest = 256

// Reply answers a request other than status.
type Reply struct {
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
	// Changes lists what a reload applied, one line per change ("none"
	// when the file was unchanged).
	Changes     []string     `json:"changes,omitempty"`
	Maintenance *Maintenance `json:"maintenance,omitempty"`
}

// readRequest reads the request line of a connection: the status when the
// client writes nothing within requestWait or closes its side at once.
func readRequest(c net.Conn) (string, error) {
	if err := c.SetReadDeadline(time.Now().Add(requestWait)); err != nil {
		return "", err
	}
	line, err := bufio.NewReaderSize(io.LimitReader(c, maxRequest), maxRequest).ReadString('\n')
	var ne net.Error
	switch {
	case err == nil:
	case errors.Is(err, io.EOF) && line == "", errors.As(err, &ne) && ne.Timeout() && line == "":
		return reqStatus, nil
	case errors.Is(err, io.EOF) && len(line) < maxRequest: // the client closed its side after the line
	case errors.Is(err, io.EOF):
		return "", fmt.Errorf("request longer than %d bytes", maxRequest)
	default:
		return "", err
	}
	return strings.TrimSpace(line), nil
}

// controlRequest sends req to the daemon listening at path and returns its
// answer, raw.
func controlRequest(path, req string, timeout time.Duration) ([]byte, error) {
	c, err := net.DialTimeout("unix", path, timeout)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(timeout)); err != nil {
		return nil, err
	}
	if _, err := io.WriteString(c, req+"\n"); err != nil {
		return nil, err
	}
	b, err := io.ReadAll(io.LimitReader(c, maxStatus+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxStatus {
		return nil, fmt.Errorf("answer larger than %d bytes: not an fwpair", maxStatus)
	}
	return b, nil
}

// Request sends a request other than status to the daemon at path and
// returns its reply; a reply with OK false is returned with an error
// holding its Error.
func Request(path, req string, timeout time.Duration) (*Reply, error) {
	b, err := controlRequest(path, req, timeout)
	if err != nil {
		return nil, fmt.Errorf("fwpair: %s: %w", req, err)
	}
	var r Reply
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("fwpair: %s: decoding the reply: %w", req, err)
	}
	if !r.OK {
		return &r, errors.New(r.Error)
	}
	return &r, nil
}

// handleRequest answers one request of the control socket.
func (d *daemon) handleRequest(req string) any {
	switch req {
	case reqStatus:
		return d.status()
	case reqReload:
		changes, err := d.reload("control socket")
		if err != nil {
			return &Reply{Error: err.Error()}
		}
		return &Reply{OK: true, Changes: changes}
	case reqMaintenanceOn, reqMaintenanceOff:
		m, err := d.setMaintenance(req == reqMaintenanceOn)
		if err != nil {
			return &Reply{Error: err.Error(), Maintenance: &m}
		}
		return &Reply{OK: true, Maintenance: &m}
	}
	return &Reply{Error: fmt.Sprintf("fwpair: unknown request %q (want one of %s, %s, %s, %s)", req,
		reqStatus, reqReload, reqMaintenanceOn, reqMaintenanceOff)}
}
