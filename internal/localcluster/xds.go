package localcluster

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
)

// The xDS resource types a sidecar's Envoy asks for first.
const (
	ClusterType  = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
	ListenerType = "type.googleapis.com/envoy.config.listener.v3.Listener"
)

// XDS is an ADS stream to istiod through the agent's XDS proxy, opened as
// the pod's Envoy would open it: with the node (id and metadata) the agent
// derived from the pod's env.
type XDS struct {
	conn   *grpc.ClientConn
	stream grpc.BidiStreamingClient[discoveryv3.DiscoveryRequest, discoveryv3.DiscoveryResponse]
	node   *corev3.Node
	cancel context.CancelFunc
}

// DialXDS opens the stream. The node is the one of the gRPC bootstrap the
// agent wrote, without its GENERATOR (which would make istiod answer with
// proxyless gRPC config instead of a sidecar's).
func (p *Proxy) DialXDS(ctx context.Context) (*XDS, error) {
	node, err := bootstrapNode(filepath.Join(p.root, "etc/istio/proxy/grpc-bootstrap.json"))
	if err != nil {
		return nil, fmt.Errorf("the agent of %s/%s: %w", p.Pod.Namespace, p.Pod.Name, err)
	}
	delete(node.GetMetadata().GetFields(), "GENERATOR")
	conn, err := grpc.NewClient("unix://"+filepath.Join(p.root, "etc/istio/proxy/XDS"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		cancel()
		conn.Close()
		return nil, fmt.Errorf("opening ADS through the agent of %s/%s: %w", p.Pod.Namespace, p.Pod.Name, err)
	}
	return &XDS{conn: conn, stream: stream, node: node, cancel: cancel}, nil
}

// Fetch subscribes to every resource of typeURL and returns istiod's first
// answer, acknowledged.
func (x *XDS) Fetch(typeURL string) ([]*anypb.Any, error) {
	if err := x.stream.Send(&discoveryv3.DiscoveryRequest{Node: x.node, TypeUrl: typeURL}); err != nil {
		return nil, fmt.Errorf("requesting %s: %w", typeURL, err)
	}
	for {
		resp, err := x.stream.Recv()
		if err != nil {
			return nil, fmt.Errorf("waiting for %s: %w", typeURL, err)
		}
		if err := x.stream.Send(&discoveryv3.DiscoveryRequest{
			TypeUrl: resp.TypeUrl, VersionInfo: resp.VersionInfo, ResponseNonce: resp.Nonce,
		}); err != nil {
			return nil, err
		}
		if resp.TypeUrl == typeURL {
			return resp.Resources, nil
		}
	}
}

// Close ends the stream.
func (x *XDS) Close() {
	x.cancel()
	x.conn.Close()
}

// bootstrapNode reads the node of the gRPC bootstrap the agent wrote.
func bootstrapNode(path string) (*corev3.Node, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var b struct {
		Node struct {
			ID       string           `json:"id"`
			Metadata map[string]any   `json:"metadata"`
			Locality *corev3.Locality `json:"locality"`
		} `json:"node"`
	}
	if err := json.Unmarshal(data, &b); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if b.Node.ID == "" {
		return nil, fmt.Errorf("%s names no node", path)
	}
	meta, err := structpb.NewStruct(b.Node.Metadata)
	if err != nil {
		return nil, fmt.Errorf("%s: node metadata: %w", path, err)
	}
	return &corev3.Node{Id: b.Node.ID, Locality: b.Node.Locality, Metadata: meta}, nil
}
