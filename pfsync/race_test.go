//go:build race

package pfsync_test

// simSeeds is the default number of simulation seeds; the race detector
// makes every seed about ten times slower (100 seeds: ~7 s).
const simSeeds = 100
