// Package requeue holds the one rule for combining the times at which the
// stages of a pass want to look again.
package requeue

import "time"

// Sooner is the earliest of the positive durations, 0 when none is: a
// stage that does not need to look again says 0, and must not hide another
// stage's wish to.
func Sooner(durations ...time.Duration) time.Duration {
	var soonest time.Duration
	for _, d := range durations {
		if d > 0 && (soonest == 0 || d < soonest) {
			soonest = d
		}
	}
	return soonest
}
