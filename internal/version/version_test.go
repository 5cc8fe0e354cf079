package version

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
)

func mustParse(t *testing.T, s string) Version {
	t.Helper()
	v, err := Parse(s)
	if err != nil {
		t.Fatalf("Parse(%q): %v", s, err)
	}
	return v
}

func TestParse(t *testing.T) {
	cases := []struct {
		in      string
		wantErr string
	}{
		{in: "1.32.0"},
		{in: "1.31.4"},
		{in: "1.31.0"},
		{in: "1.30.8"},
		{in: "1.31.5", wantErr: "not supported; supported versions: 1.32.0, 1.31.0-1.31.4, 1.30.0-1.30.8"},
		{in: "1.29.3", wantErr: "not supported"},
		{in: "1.33.0", wantErr: "not supported"},
		{in: "1.32", wantErr: "not of the form X.Y.Z"},
		{in: "v1.32.0", wantErr: "not of the form X.Y.Z"},
		{in: "1.32.0-rc.1", wantErr: "not of the form X.Y.Z"},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			v, err := Parse(tc.in)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if v.String() != tc.in {
					t.Errorf("String() = %q", v.String())
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.wantErr)
			}
		})
	}
}

func TestRevisionName(t *testing.T) {
	if got := mustParse(t, "1.32.0").Revision(); got != "1-32-0" {
		t.Errorf("Revision() = %q, want 1-32-0", got)
	}
}

func TestTableIsNewestFirstAndLatestParses(t *testing.T) {
	rs := releases
	if len(rs) < 3 {
		t.Fatalf("want at least three supported minors, have %d", len(rs))
	}
	for i := 1; i < len(rs); i++ {
		if mustParse(t, rs[i-1].Minor+".0").Compare(mustParse(t, rs[i].Minor+".0")) <= 0 {
			t.Errorf("table not newest first at %s, %s", rs[i-1].Minor, rs[i].Minor)
		}
	}
	mustParse(t, fmt.Sprintf("%s.%d", rs[0].Minor, rs[0].LatestPatch))
}

func TestBehaviourChangesOfAnUpgrade(t *testing.T) {
	cases := []struct {
		from, to string
		want     []string
	}{
		{"1.30.8", "1.31.4", []string{"PILOT_AUTO_SEND_UNHEALTHY_ENDPOINTS", "PILOT_ENABLE_STRICT_GATEWAY_MERGING", "PILOT_SPAWN_UPSTREAM_SPAN_FOR_GATEWAY"}},
		{"1.30.0", "1.32.0", []string{"PILOT_AUTO_SEND_UNHEALTHY_ENDPOINTS", "PILOT_ENABLE_STRICT_GATEWAY_MERGING", "PILOT_SPAWN_UPSTREAM_SPAN_FOR_GATEWAY"}},
		{"1.31.0", "1.31.4", nil},
		{"1.31.4", "1.30.8", nil},
	}
	for _, tc := range cases {
		got := BehaviourChanges(mustParse(t, tc.from), mustParse(t, tc.to))
		if keys := slices.Sorted(maps.Keys(got)); !slices.Equal(keys, tc.want) {
			t.Errorf("%s -> %s: got %v, want %v", tc.from, tc.to, keys, tc.want)
		}
	}
}

func TestUpgradeRules(t *testing.T) {
	cases := []struct {
		from, to      string
		inPlaceRule   string // "" = allowed
		canaryAllowed bool
	}{
		{"1.31.0", "1.31.4", "", true},
		{"1.31.4", "1.32.0", "", true},
		{"1.30.8", "1.31.0", "", true},
		{"1.30.8", "1.32.0", "VersionSkewTooLarge", true},
		{"1.31.4", "1.31.0", "DowngradeNotAllowed", true},
		{"1.32.0", "1.30.0", "DowngradeNotAllowed", true},
		{"1.31.4", "1.31.4", "", true},
	}
	for _, tc := range cases {
		t.Run(tc.from+"->"+tc.to, func(t *testing.T) {
			from, to := mustParse(t, tc.from), mustParse(t, tc.to)
			err := CheckInPlace(from, to)
			var skew *SkewError
			switch {
			case tc.inPlaceRule == "" && err != nil:
				t.Errorf("in place refused: %v", err)
			case tc.inPlaceRule != "" && (!errors.As(err, &skew) || skew.Rule != tc.inPlaceRule):
				t.Errorf("in place: got %v, want rule %s", err, tc.inPlaceRule)
			case tc.inPlaceRule != "" && !strings.Contains(err.Error(), "spec.version"):
				t.Errorf("message does not name spec.version: %v", err)
			}
			if err := CheckCanary(from, to); (err == nil) != tc.canaryAllowed {
				t.Errorf("canary: got %v, want allowed=%v", err, tc.canaryAllowed)
			}
		})
	}
}
