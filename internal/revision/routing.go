package revision

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Routing is where the revision tags send new pods: to the active revision,
// and during a canary a share of workloads to the canary revision. It is
// kept in the cluster (a ConfigMap beside the control plane that the
// injector reads), never only in status, so a lost or restored status cannot
// move a workload or lose a revision. Decide changes it only towards a
// revision whose istiod is available, and, with spec.cni, for which the
// istio-cni node agent is ready (cniReadyFor).
type Routing struct {
	// Tags are the revision tags that follow the active revision: default and spec.revisionTags.
	Tags []string
	// Active is the revision the tags point at.
	Active string
	// Canary is the canary revision during a canary upgrade; "" otherwise.
	Canary string
	// Weight is the share (percent) of tag-selecting workloads sent to Canary.
	Weight int32
}

// Keys of a routing ConfigMap's data.
const (
	routingActive = "active"
	routingCanary = "canary"
	routingWeight = "canaryWeight"
	routingTags   = "tags"
)

// Data is the routing as ConfigMap data, readable with kubectl.
func (r Routing) Data() map[string]string {
	d := map[string]string{routingActive: r.Active, routingTags: strings.Join(r.Tags, ",")}
	if r.Canary != "" {
		d[routingCanary] = r.Canary
		d[routingWeight] = strconv.Itoa(int(r.Weight))
	}
	return d
}

// RoutingFromData reads a routing ConfigMap's data.
func RoutingFromData(d map[string]string) (Routing, error) {
	r := Routing{Active: d[routingActive], Canary: d[routingCanary]}
	if r.Active == "" {
		return Routing{}, fmt.Errorf("routing: data.%s is empty; it must name the active revision", routingActive)
	}
	if t := d[routingTags]; t != "" {
		r.Tags = strings.Split(t, ",")
	}
	if r.Canary != "" {
		w, err := strconv.ParseInt(d[routingWeight], 10, 32)
		if err != nil || w < 0 || w > 100 {
			return Routing{}, fmt.Errorf("routing: data.%s %q is not a percentage (0 to 100)", routingWeight, d[routingWeight])
		}
		r.Weight = int32(w)
	}
	return r, nil
}

// Equal reports whether two routings send every pod to the same place.
func (r *Routing) Equal(o *Routing) bool {
	if r == nil || o == nil {
		return r == o
	}
	return r.Active == o.Active && r.Canary == o.Canary && r.Weight == o.Weight && slices.Equal(r.Tags, o.Tags)
}

// Target returns the revision a workload selecting a tag is sent to.
func (r *Routing) Target(namespace, workload string) string {
	if r.Canary != "" && OnCanary(namespace, workload, r.Weight) {
		return r.Canary
	}
	return r.Active
}
