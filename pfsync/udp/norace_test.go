//go:build !race

package udp

// raceEnabled reports a build with the race detector.
const raceEnabled = false
