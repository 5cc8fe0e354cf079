package podpatch

import (
	corev1 "k8s.io/api/core/v1"
)

// appendVolume encodes the volume sources injection uses directly and the
// others with encoding/json.
func appendVolume(b []byte, v *corev1.Volume) ([]byte, error) {
	if b, ok := cachedVolumeJSON(b, v); ok {
		return b, nil
	}
	o := beginObject(b)
	o.str("name", v.Name)
	s := &v.VolumeSource
	if s.HostPath != nil {
		o.std("hostPath", s.HostPath)
	}
	if d := s.EmptyDir; d != nil {
		o.sub("emptyDir", func(b []byte) ([]byte, error) {
			e := beginObject(b)
			e.strOmit("medium", string(d.Medium))
			if d.SizeLimit != nil {
				e.sub("sizeLimit", func(b []byte) ([]byte, error) { return appendQuantity(b, d.SizeLimit) })
			}
			e.int32Ptr("mode", d.Mode)
			return e.end()
		})
	}
	stdIf(&o, "gcePersistentDisk", s.GCEPersistentDisk)
	stdIf(&o, "awsElasticBlockStore", s.AWSElasticBlockStore)
	stdIf(&o, "gitRepo", s.GitRepo)
	stdIf(&o, "secret", s.Secret)
	stdIf(&o, "nfs", s.NFS)
	stdIf(&o, "iscsi", s.ISCSI)
	stdIf(&o, "glusterfs", s.Glusterfs)
	stdIf(&o, "persistentVolumeClaim", s.PersistentVolumeClaim)
	stdIf(&o, "rbd", s.RBD)
	stdIf(&o, "flexVolume", s.FlexVolume)
	stdIf(&o, "cinder", s.Cinder)
	stdIf(&o, "cephfs", s.CephFS)
	stdIf(&o, "flocker", s.Flocker)
	if d := s.DownwardAPI; d != nil {
		o.sub("downwardAPI", func(b []byte) ([]byte, error) {
			e := beginObject(b)
			list(&e, "items", d.Items, appendDownwardAPIFile)
			e.int32Ptr("defaultMode", d.DefaultMode)
			e.int64Ptr("defaultUser", d.DefaultUser)
			return e.end()
		})
	}
	stdIf(&o, "fc", s.FC)
	stdIf(&o, "azureFile", s.AzureFile)
	if c := s.ConfigMap; c != nil {
		o.sub("configMap", func(b []byte) ([]byte, error) {
			e := beginObject(b)
			e.strOmit("name", c.Name)
			if len(c.Items) > 0 {
				e.std("items", c.Items)
			}
			e.int32Ptr("defaultMode", c.DefaultMode)
			e.boolPtr("optional", c.Optional)
			e.int64Ptr("defaultUser", c.DefaultUser)
			return e.end()
		})
	}
	stdIf(&o, "vsphereVolume", s.VsphereVolume)
	stdIf(&o, "quobyte", s.Quobyte)
	stdIf(&o, "azureDisk", s.AzureDisk)
	stdIf(&o, "photonPersistentDisk", s.PhotonPersistentDisk)
	if p := s.Projected; p != nil {
		o.sub("projected", func(b []byte) ([]byte, error) { return appendProjected(b, p) })
	}
	stdIf(&o, "portworxVolume", s.PortworxVolume)
	stdIf(&o, "scaleIO", s.ScaleIO)
	stdIf(&o, "storageos", s.StorageOS)
	stdIf(&o, "csi", s.CSI)
	stdIf(&o, "ephemeral", s.Ephemeral)
	stdIf(&o, "image", s.Image)
	return o.end()
}

// stdIf encodes a non-nil pointer member with encoding/json.
func stdIf[T any](o *jsonObject, k string, v *T) {
	if v != nil {
		o.std(k, v)
	}
}

func appendDownwardAPIFile(b []byte, f *corev1.DownwardAPIVolumeFile) ([]byte, error) {
	o := beginObject(b)
	o.str("path", f.Path)
	if f.FieldRef != nil {
		o.sub("fieldRef", func(b []byte) ([]byte, error) { return appendFieldRef(b, f.FieldRef) })
	}
	stdIf(&o, "resourceFieldRef", f.ResourceFieldRef)
	o.int32Ptr("mode", f.Mode)
	o.int64Ptr("user", f.User)
	return o.end()
}

func appendProjected(b []byte, p *corev1.ProjectedVolumeSource) ([]byte, error) {
	o := beginObject(b)
	o.key("sources")
	if p.Sources == nil {
		o.b = append(o.b, "null"...)
	} else {
		var err error
		if o.b, err = appendList(o.b, p.Sources, appendProjection); err != nil {
			return o.b, err
		}
	}
	o.int32Ptr("defaultMode", p.DefaultMode)
	o.int64Ptr("defaultUser", p.DefaultUser)
	return o.end()
}

func appendProjection(b []byte, p *corev1.VolumeProjection) ([]byte, error) {
	o := beginObject(b)
	stdIf(&o, "secret", p.Secret)
	stdIf(&o, "downwardAPI", p.DownwardAPI)
	stdIf(&o, "configMap", p.ConfigMap)
	if t := p.ServiceAccountToken; t != nil {
		o.sub("serviceAccountToken", func(b []byte) ([]byte, error) {
			e := beginObject(b)
			e.strOmit("audience", t.Audience)
			e.int64Ptr("expirationSeconds", t.ExpirationSeconds)
			e.str("path", t.Path)
			e.int64Ptr("user", t.User)
			return e.end()
		})
	}
	stdIf(&o, "clusterTrustBundle", p.ClusterTrustBundle)
	stdIf(&o, "podCertificate", p.PodCertificate)
	return o.end()
}
