package e2e

import (
	"flag"
	"hash/fnv"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

var e2eSeed = flag.Int64("e2e.seed", 0, "seed of the end-to-end tests' random choices; 0 picks one from the clock (each test logs how to replay it)")

var (
	baseSeedOnce sync.Once
	baseSeed     int64
)

// testSeed returns the seed of t's random choices: the run's seed (from
// -e2e.seed, or the clock) mixed with t's name, so that each test draws
// its own numbers and one test replays alone. It logs how to replay it.
func testSeed(t testing.TB) int64 {
	baseSeedOnce.Do(func() {
		baseSeed = *e2eSeed
		if baseSeed == 0 {
			baseSeed = time.Now().UnixNano()
		}
	})
	h := fnv.New64a()
	h.Write([]byte(t.Name()))
	seed := baseSeed ^ int64(h.Sum64())
	t.Logf("random choices from run seed %d (replay with -e2e.seed=%d -run '^%s$')", baseSeed, baseSeed, t.Name())
	return seed
}

// testRand returns t's random source (see testSeed).
func testRand(t testing.TB) *rand.Rand {
	seed := uint64(testSeed(t))
	return rand.New(rand.NewPCG(seed, seed>>1|1))
}
