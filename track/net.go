package track

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
)

// TCP is a Check that is healthy when a TCP connection to Address
// ("host:port") is accepted within the timeout (keepalived's TCP_CHECK).
// The connection is closed at once.
type TCP struct {
	Address string
}

// Check dials Address once.
func (c *TCP) Check(ctx context.Context) error {
	if c.Address == "" {
		return errors.New("track: TCP.Address empty")
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", c.Address)
	if err != nil {
		return fmt.Errorf("track: tcp %s: %w", c.Address, err)
	}
	return conn.Close()
}

// HTTP is a Check that is healthy when a GET of URL answers with Status
// (keepalived's HTTP_GET). The body is read up to 64 KiB and discarded.
type HTTP struct {
	URL string
	// Status is the status code wanted; zero means any 2xx.
	Status int
	// Client sends the request; nil means a client of its own that keeps
	// no idle connection (a check opens a fresh connection every time, as
	// a user's first request would).
	Client *http.Client
}

// Check sends one GET.
func (c *HTTP) Check(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.URL, nil)
	if err != nil {
		return fmt.Errorf("track: HTTP.URL %q: %w", c.URL, err)
	}
	client := c.Client
	if client == nil {
		client = &http.Client{Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil}}
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("track: http %s: %w", c.URL, err)
	}
	_, err = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if cerr := resp.Body.Close(); err == nil {
		err = cerr
	}
	ok := resp.StatusCode/100 == 2
	if c.Status != 0 {
		ok = resp.StatusCode == c.Status
	}
	if !ok {
		return fmt.Errorf("track: http %s: status %d", c.URL, resp.StatusCode)
	}
	if err != nil {
		return fmt.Errorf("track: http %s: body: %w", c.URL, err)
	}
	return nil
}
