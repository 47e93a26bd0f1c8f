package spec

import (
	"maps"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// selector compiles a label selector ({} selects everything), checking each of its keys,
// values and operators first, so that a fault names the one at fault. It returns nil on a
// fault.
func (f *faults) selector(p *field.Path, s *metav1.LabelSelector) labels.Selector {
	mark := f.mark()
	for _, k := range slices.Sorted(maps.Keys(s.MatchLabels)) {
		path := p.Child("matchLabels").Key(k)
		f.labelKey(path, k)
		f.labelValue(path, s.MatchLabels[k])
	}
	for i := range s.MatchExpressions {
		f.expression(p.Child("matchExpressions").Index(i), &s.MatchExpressions[i])
	}
	if f.since(mark) {
		return nil
	}
	sel, err := metav1.LabelSelectorAsSelector(s)
	if err != nil {
		f.add(field.ErrorTypeInvalid, p, nil, "not a label selector: %v", err)
		return nil
	}
	return sel
}

// expression checks one element of matchExpressions.
func (f *faults) expression(p *field.Path, e *metav1.LabelSelectorRequirement) {
	f.labelKey(p.Child("key"), e.Key)
	switch e.Operator {
	case metav1.LabelSelectorOpIn, metav1.LabelSelectorOpNotIn:
		if len(e.Values) == 0 {
			f.add(field.ErrorTypeRequired, p.Child("values"), nil, "operator %s needs values", e.Operator)
		}
	case metav1.LabelSelectorOpExists, metav1.LabelSelectorOpDoesNotExist:
		if len(e.Values) > 0 {
			f.add(field.ErrorTypeForbidden, p.Child("values"), e.Values, "operator %s takes no values", e.Operator)
		}
	default:
		op := string(e.Operator)
		f.add(field.ErrorTypeNotSupported, p.Child("operator"), op, "%q is not In, NotIn, Exists or DoesNotExist", clip(op))
	}
	for i, v := range e.Values {
		f.labelValue(p.Child("values").Index(i), v)
	}
}

func (f *faults) labelKey(p *field.Path, k string) {
	if errs := validation.IsQualifiedName(k); len(errs) > 0 {
		f.add(field.ErrorTypeInvalid, p, k, "label key %q: %s", clip(k), strings.Join(errs, "; "))
	}
}

func (f *faults) labelValue(p *field.Path, v string) {
	if errs := validation.IsValidLabelValue(v); len(errs) > 0 {
		f.add(field.ErrorTypeInvalid, p, v, "label value %q: %s", clip(v), strings.Join(errs, "; "))
	}
}
