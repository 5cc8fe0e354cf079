package revision

import (
	"errors"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/refusal"
)

// The reconciler and admission share one singleton rule: the oldest live
// MeshInstall (creation time, then name) manages the mesh, and a new one is
// refused while any live one is stored.
func TestCheckSingleton(t *testing.T) {
	at := func(name string, created time.Time) meshv1alpha1.MeshInstall {
		return meshv1alpha1.MeshInstall{ObjectMeta: metav1.ObjectMeta{Name: name, CreationTimestamp: metav1.NewTime(created)}}
	}
	deleting := at("old", t0.Add(-time.Hour))
	deleting.DeletionTimestamp = &metav1.Time{Time: t0}
	first, second, sameSecond := at("first", t0), at("second", t0.Add(time.Minute)), at("a-same-second", t0)
	cases := []struct {
		name    string
		mi      meshv1alpha1.MeshInstall
		stored  []meshv1alpha1.MeshInstall
		wantErr string
	}{
		{name: "alone", mi: first, stored: []meshv1alpha1.MeshInstall{first}},
		{name: "the oldest wins", mi: first, stored: []meshv1alpha1.MeshInstall{second, first}},
		{name: "a younger one is refused", mi: second, stored: []meshv1alpha1.MeshInstall{first, second}, wantErr: "MeshInstall first already manages the mesh"},
		{name: "created in the same second, the first name wins", mi: first, stored: []meshv1alpha1.MeshInstall{first, sameSecond}, wantErr: "MeshInstall a-same-second already"},
		{name: "one being deleted does not count", mi: second, stored: []meshv1alpha1.MeshInstall{deleting, second}},
		{name: "at admission, not stored yet: any live one refuses", mi: at("new", time.Time{}), stored: []meshv1alpha1.MeshInstall{second}, wantErr: "MeshInstall second already"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckSingleton(&tc.mi, tc.stored)
			if tc.wantErr == "" && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("got %v, want an error containing %q", err, tc.wantErr)
			}
			var refused *refusal.Error
			if tc.wantErr != "" && !errors.As(err, &refused) {
				t.Fatalf("got %T, want a refusal.Error (the reconciler stalls on it)", err)
			}
		})
	}
}
