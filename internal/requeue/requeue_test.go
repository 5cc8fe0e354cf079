package requeue

import (
	"testing"
	"time"
)

func TestSooner(t *testing.T) {
	cases := []struct {
		name string
		in   []time.Duration
		want time.Duration
	}{
		{name: "nothing to wait for", want: 0},
		{name: "no stage needs to look again", in: []time.Duration{0, 0}, want: 0},
		{name: "a zero does not hide a wait", in: []time.Duration{0, time.Minute}, want: time.Minute},
		{name: "nor does it after one", in: []time.Duration{time.Minute, 0}, want: time.Minute},
		{name: "the earliest wins", in: []time.Duration{time.Minute, 10 * time.Second, time.Hour}, want: 10 * time.Second},
		{name: "negative counts as no wait", in: []time.Duration{-time.Second, time.Minute}, want: time.Minute},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := Sooner(tc.in...); got != tc.want {
				t.Errorf("Sooner(%v) = %v, want %v", tc.in, got, tc.want)
			}
		})
	}
}
