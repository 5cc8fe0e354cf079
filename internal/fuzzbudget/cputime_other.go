//go:build !linux

package fuzzbudget

import "time"

// threadCPUTime is not measured outside Linux: only Call's wall limit applies.
func threadCPUTime() time.Duration { return 0 }
