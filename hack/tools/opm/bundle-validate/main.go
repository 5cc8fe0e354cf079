// Command bundle-validate checks an operator bundle directory as
// `operator-sdk bundle validate <dir> --select-optional suite=operatorframework`
// does, with the same libraries (operator-framework/api's validators and
// operator-registry's bundle format check), but without operator-sdk or a
// container tool. It prints every error and warning and exits 1 on an error.
//
// Usage: bundle-validate [-k8s-version 1.37] <bundle dir>
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/operator-framework/api/pkg/manifests"
	"github.com/operator-framework/api/pkg/validation"
	apierrors "github.com/operator-framework/api/pkg/validation/errors"
	registrybundle "github.com/operator-framework/operator-registry/pkg/lib/bundle"
	"github.com/sirupsen/logrus"
	k8svalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/yaml"
)

func main() {
	k8sVersion := flag.String("k8s-version", "", "Kubernetes version the bundle targets (the optional validators' k8s-version)")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: bundle-validate [-k8s-version X.Y] <bundle dir>")
		os.Exit(2)
	}
	errs, warns, err := validate(flag.Arg(0), *k8sVersion)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bundle-validate:", err)
		os.Exit(1)
	}
	for _, w := range warns {
		fmt.Println("WARN", w)
	}
	for _, e := range errs {
		fmt.Println("ERROR", e)
	}
	if len(errs) > 0 {
		fmt.Printf("%s: %d errors, %d warnings\n", flag.Arg(0), len(errs), len(warns))
		os.Exit(1)
	}
	fmt.Printf("%s: valid (%d warnings)\n", flag.Arg(0), len(warns))
}

// validate runs, in order: the registry+v1 directory format check, the
// supported-kinds and metadata check of every non-CSV, non-CRD object, the
// bundle, CSV and CRD validators, and the optional validators of the
// operatorframework suite.
func validate(dir, k8sVersion string) (errs, warns []string, err error) {
	logger := logrus.NewEntry(logrus.New())
	logger.Logger.SetOutput(os.Stderr)
	logger.Logger.SetLevel(logrus.WarnLevel)
	if err := registrybundle.NewImageValidator(nil, logger).ValidateBundleFormat(dir); err != nil {
		errs = append(errs, fmt.Sprintf("bundle format: %v", err))
	}

	manifestsDir, err := manifestsDirOf(dir)
	if err != nil {
		return nil, nil, err
	}
	mediaType, err := registrybundle.GetMediaType(manifestsDir)
	if err != nil {
		return nil, nil, err
	}
	bundle, err := manifests.GetBundleFromDir(manifestsDir)
	if err != nil {
		return nil, nil, err
	}

	var results []apierrors.ManifestResult
	objects := apierrors.ManifestResult{Name: bundle.Name}
	for _, u := range bundle.Objects {
		gvk := u.GroupVersionKind()
		if gvk.Kind == "ClusterServiceVersion" || gvk.Kind == "CustomResourceDefinition" {
			continue
		}
		if ok, _ := registrybundle.IsSupported(gvk.Kind); mediaType == registrybundle.RegistryV1Type && !ok {
			objects.Add(apierrors.ErrInvalidBundle(fmt.Sprintf("kind %s is not supported in a %s bundle", gvk.Kind, mediaType), u.GetName()))
			continue
		}
		noPrefix := func(string, bool) []string { return nil }
		if fieldErrs := k8svalidation.ValidateObjectMetaAccessor(metav1.Object(u), false, noPrefix, field.NewPath("metadata")); len(fieldErrs) > 0 {
			objects.Add(apierrors.ErrFailedValidation(fieldErrs.ToAggregate().Error(), u.GetName()))
		}
	}
	results = append(results, objects)
	results = append(results, validation.BundleValidator.Validate(bundle)...)
	if bundle.CSV == nil {
		errs = append(errs, "no ClusterServiceVersion in the bundle")
	} else {
		results = append(results, validation.ClusterServiceVersionValidator.Validate(bundle.CSV)...)
	}
	var crds []any
	for _, crd := range bundle.V1CRDs {
		crds = append(crds, crd)
	}
	if len(crds) > 0 {
		results = append(results, validation.CustomResourceDefinitionValidator.Validate(crds...)...)
	}

	// The operatorframework suite, given what operator-sdk gives it.
	optional := bundle.ObjectsToValidate()
	for _, u := range bundle.Objects {
		optional = append(optional, u)
	}
	values := map[string]string{}
	if k8sVersion != "" {
		values["k8s-version"] = k8sVersion
	}
	optional = append(optional, values)
	for _, v := range []interface {
		Validate(...interface{}) []apierrors.ManifestResult
	}{
		validation.OperatorHubV2Validator,
		validation.StandardCapabilitiesValidator,
		validation.StandardCategoriesValidator,
		validation.AlphaDeprecatedAPIsValidator,
		validation.GoodPracticesValidator,
	} {
		results = append(results, v.Validate(optional...)...)
	}

	for _, r := range results {
		for _, e := range r.Errors {
			errs = append(errs, fmt.Sprintf("%s: %s", r.Name, e.Error()))
		}
		for _, w := range r.Warnings {
			warns = append(warns, fmt.Sprintf("%s: %s", r.Name, w.Error()))
		}
	}
	return errs, warns, nil
}

// manifestsDirOf reads metadata/annotations.yaml for the manifests directory
// (operators.operatorframework.io.bundle.manifests.v1), manifests/ by default.
func manifestsDirOf(dir string) (string, error) {
	data, err := os.ReadFile(filepath.Join(dir, registrybundle.MetadataDir, registrybundle.AnnotationsFile))
	if err != nil {
		return "", err
	}
	var meta registrybundle.AnnotationMetadata
	if err := yaml.Unmarshal(data, &meta); err != nil {
		return "", fmt.Errorf("metadata/annotations.yaml: %w", err)
	}
	if d, ok := meta.Annotations[registrybundle.ManifestsLabel]; ok && d != "" {
		return filepath.Join(dir, d), nil
	}
	return filepath.Join(dir, registrybundle.ManifestsDir), nil
}
