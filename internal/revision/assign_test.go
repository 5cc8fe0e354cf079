package revision

import (
	"fmt"
	"testing"
)

func TestBucketsAreStableAndSpread(t *testing.T) {
	if Bucket("shop", "web") != Bucket("shop", "web") {
		t.Fatal("the same workload landed in two buckets")
	}
	if Bucket("shop", "web") == Bucket("web", "shop") && Bucket("a", "bc") == Bucket("ab", "c") {
		t.Error("namespace and name are not separated in the hash")
	}
	counts := make([]int, 100)
	const n = 10000
	for i := range n {
		counts[Bucket(fmt.Sprintf("ns-%d", i%37), fmt.Sprintf("workload-%d", i))]++
	}
	for b, c := range counts {
		if c < n/100/2 || c > n/100*2 {
			t.Errorf("bucket %d holds %d of %d workloads; the hash is badly skewed", b, c, n)
		}
	}
}

func TestOnCanaryGrowsMonotonically(t *testing.T) {
	// A workload on the canary at 10% stays on it at 50% and 100%.
	for i := range 500 {
		w := fmt.Sprintf("w-%d", i)
		at10, at50, at100 := OnCanary("ns", w, 10), OnCanary("ns", w, 50), OnCanary("ns", w, 100)
		if (at10 && !at50) || (at50 && !at100) || !at100 || OnCanary("ns", w, 0) {
			t.Fatalf("workload %s: 10%%=%v 50%%=%v 100%%=%v", w, at10, at50, at100)
		}
	}
}
