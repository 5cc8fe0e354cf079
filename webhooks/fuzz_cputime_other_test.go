//go:build !linux

package webhooks

import "time"

// threadCPUTime is not measured outside Linux: only callBounded's wall limit applies.
func threadCPUTime() time.Duration { return 0 }
