package carp

import "testing"

// CapturedPacket and ReadPcap give package carp_test's namespace tests the
// pcap reader of this package's tests.
type CapturedPacket = capturedPacket

// ReadPcap is readPcap.
func ReadPcap(t testing.TB, path string) []CapturedPacket { return readPcap(t, path) }
