package revision

import "hash/fnv"

// Bucket places a workload (namespace + owning workload name) in one of 100
// buckets with a stable hash, so every pod of a workload, and every restart
// of it, lands in the same bucket.
func Bucket(namespace, workload string) int32 {
	h := fnv.New32a()
	_, _ = h.Write([]byte(namespace))
	_, _ = h.Write([]byte{'/'})
	_, _ = h.Write([]byte(workload))
	return int32(h.Sum32() % 100)
}

// OnCanary says whether a workload that selects a tag is assigned to the
// canary revision when the canary receives weight percent of workloads.
func OnCanary(namespace, workload string, weight int32) bool {
	return Bucket(namespace, workload) < weight
}
