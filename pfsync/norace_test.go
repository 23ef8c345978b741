//go:build !race

package pfsync_test

// simSeeds is the default number of simulation seeds.
const simSeeds = 200
