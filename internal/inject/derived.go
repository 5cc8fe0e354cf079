package inject

import (
	"fmt"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// Defaults of Istio's chart values the Config does not carry.
const (
	defaultClusterDomain = "cluster.local"
	defaultClusterID     = "Kubernetes"
	defaultAgentLogLevel = "default:info"
	defaultRevision      = "default"
	proxyUID             = "1337"
	proxyUIDInt          = int64(1337)
)

// derived is what injection reads from a Config, computed once.
type derived struct {
	hash string
	// minor is the Istio minor version; behaviours that changed between
	// supported versions are keyed on it.
	minor int
	// native is the configured default for istio-proxy placement.
	native bool
	// proxy is the mesh's effective default ProxyConfig.
	proxy *proxySettings
	// imageRepo and imageTag split ProxyImage, for image type variants.
	imageRepo, imageTag string
	revision            string
	caAddress           string
	clusterDomain       string
	meshID              string
	statuses            statusCache
	// pullSecrets are Config.ImagePullSecrets as pods reference them.
	pullSecrets []corev1.LocalObjectReference
	// cni: the CNI node agent redirects the pods' traffic; multus: it is
	// called through Multus. initName is istio-init or istio-validation.
	cni, multus bool
	initName    string
	// sc are the injected containers' security contexts, with the
	// configured seccomp profile.
	sc securityContexts
}

// securityContexts are the security contexts of the sidecar template's
// containers, by case. Without a seccomp profile they are the shared ones.
type securityContexts struct {
	init                                   *corev1.SecurityContext
	proxy, tproxy, bind, tproxyBind, trace *corev1.SecurityContext
}

func newSecurityContexts(initSC *corev1.SecurityContext, seccomp *corev1.SeccompProfile) securityContexts {
	with := func(sc *corev1.SecurityContext) *corev1.SecurityContext {
		if seccomp == nil {
			return sc
		}
		c := sc.DeepCopy()
		c.SeccompProfile = seccomp.DeepCopy()
		return c
	}
	return securityContexts{
		init:       with(initSC),
		proxy:      with(sharedProxySC),
		tproxy:     with(sharedTPROXYProxySC),
		bind:       with(sharedBindProxySC),
		tproxyBind: with(sharedTPROXYBindProxySC),
		trace:      with(sharedTraceProxySC),
	}
}

func derive(c *Config) (*derived, error) {
	d := &derived{hash: configHash(c)}
	minor, err := istioMinor(c.Version)
	if err != nil {
		return d, err
	}
	d.minor = minor
	switch c.NativeSidecars {
	case "", NativeSidecarsAuto, NativeSidecarsEnabled:
		d.native = true
	case NativeSidecarsDisabled:
	default:
		return d, fmt.Errorf("nativeSidecars %q is not one of Auto, Enabled, Disabled", c.NativeSidecars)
	}
	if c.ProxyImage == "" {
		return d, fmt.Errorf("proxyImage is empty")
	}
	if c.TrafficCapture != nil {
		if err := validateTrafficCapture(*c.TrafficCapture); err != nil {
			return d, err
		}
	}
	pc, err := meshProxyConfig(c)
	if err != nil {
		return d, err
	}
	if d.proxy, err = newProxySettings(pc); err != nil {
		return d, err
	}
	d.imageRepo, d.imageTag = splitImage(c.ProxyImage)
	d.revision = c.Revision
	if d.revision == "" {
		d.revision = defaultRevision
	}
	d.caAddress = c.CAAddress
	if d.caAddress == "" {
		// What the sidecar template computes when caAddress is unset.
		ns := c.Namespace
		if ns == "" {
			ns = "istio-system"
		}
		name := "istiod"
		if d.revision != defaultRevision {
			name += "-" + d.revision
		}
		d.caAddress = name + "." + ns + ".svc:15012"
	}
	d.clusterDomain = c.ClusterDomain
	if d.clusterDomain == "" {
		d.clusterDomain = defaultClusterDomain
	}
	d.meshID = c.MeshID
	if d.meshID == "" {
		d.meshID = c.TrustDomain
	}
	for _, name := range c.ImagePullSecrets {
		d.pullSecrets = append(d.pullSecrets, corev1.LocalObjectReference{Name: name})
	}
	initSC := sharedInitSC
	d.initName = InitContainerName
	if c.CNI != nil {
		switch c.CNI.Provider {
		case "", CNIProviderDefault:
		case CNIProviderMultus:
			d.multus = true
		default:
			return d, fmt.Errorf("cni.provider %q is not one of %s, %s", c.CNI.Provider, CNIProviderDefault, CNIProviderMultus)
		}
		d.cni = true
		d.initName = ValidationContainerName
		initSC = sharedValidationSC
	}
	d.sc = newSecurityContexts(initSC, c.SeccompProfile)
	d.statuses = newStatusCache(d.revision, d.initName, d.pullSecrets)
	return d, nil
}

// istioMinor returns Y of X.Y.Z; an empty version means the newest behaviour.
func istioMinor(version string) (int, error) {
	if version == "" {
		return newestMinor, nil
	}
	parts := strings.SplitN(version, ".", 3)
	if len(parts) < 2 || parts[0] != "1" {
		return 0, fmt.Errorf("version %q is not an Istio 1.Y.Z version", version)
	}
	minor, err := strconv.Atoi(parts[1])
	if err != nil {
		return 0, fmt.Errorf("version %q is not an Istio 1.Y.Z version", version)
	}
	return minor, nil
}

// newestMinor is the newest Istio minor version whose injection meshkeeper
// knows; later versions are injected like it.
const newestMinor = 32

// Istio versions that changed injection.
const (
	// minorIstio131: istio-init's image ignores the ProxyConfig
	// image type (values.global.proxy_init.image); canonical names are
	// trimmed of '-', '_' and '.' at both ends; prometheus merge validates
	// ports, supports prometheus.istio.io/scrape-targets and
	// prometheus.istio.io/secure-port.
	minorIstio131 = 31
)

// splitImage splits an image reference into repository and tag; a digest
// reference or an image without a tag has no tag.
func splitImage(image string) (repo, tag string) {
	if strings.Contains(image, "@") {
		return image, ""
	}
	slash := strings.LastIndexByte(image, '/')
	colon := strings.LastIndexByte(image, ':')
	if colon > slash {
		return image[:colon], image[colon+1:]
	}
	return image, ""
}

// knownImageTypes are the image variants Istio publishes.
var knownImageTypes = []string{"distroless", "debug"}

// imageWithType is the proxy image of the given variant ("" keeps the
// configured one, "default" removes any variant suffix), as Istio builds it.
func (d *derived) imageWithType(imageType string) string {
	if imageType == "" || d.imageTag == "" {
		if d.imageTag == "" {
			return d.imageRepo
		}
		return d.imageRepo + ":" + d.imageTag
	}
	tag := d.imageTag
	for _, t := range knownImageTypes {
		if strings.HasSuffix(tag, "-"+t) {
			tag = tag[:len(tag)-len(t)-1]
			break
		}
	}
	if imageType != "default" {
		tag += "-" + imageType
	}
	return d.imageRepo + ":" + tag
}
