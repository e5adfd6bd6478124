// Package bom writes an AI bill of materials for a model file or folder as
// a CycloneDX 1.6 ML-BOM: every file with its SHA-256, each model as a
// machine-learning-model component with a model card drawn from its
// metadata, and the datasets it was trained on (by content fingerprint) as
// data components it depends on.
package bom

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	cdx "github.com/CycloneDX/cyclonedx-go"

	"github.com/bulwark-sec/bulwark/internal/version"
	"github.com/bulwark-sec/bulwark/model"
	"github.com/bulwark-sec/bulwark/model/onnx"
)

// SpecVersion is the CycloneDX version written: 1.6, the first with the
// ML-BOM fields this uses that most consumers read.
const SpecVersion = cdx.SpecVersion1_6

// Build describes root (a file or a folder, walked without following
// symlinks) as a BOM. now stamps the metadata.
func Build(root string, now time.Time) (*cdx.BOM, error) {
	st, err := os.Lstat(root)
	if err != nil {
		return nil, err
	}
	var files []string
	if st.IsDir() {
		err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.Type().IsRegular() {
				files = append(files, p)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	} else if st.Mode().IsRegular() {
		files = []string{root}
	} else {
		return nil, fmt.Errorf("%s: not a regular file or folder", root)
	}
	sort.Strings(files)

	b := cdx.NewBOM()
	b.SerialNumber = ""
	tool := cdx.Component{Type: cdx.ComponentTypeApplication, Name: "bulwark", Version: version.Version}
	b.Metadata = &cdx.Metadata{
		Timestamp: now.UTC().Format(time.RFC3339),
		Tools:     &cdx.ToolsChoice{Components: &[]cdx.Component{tool}},
		Component: &cdx.Component{Type: cdx.ComponentTypeMachineLearningModel, Name: filepath.Base(filepath.Clean(root)), BOMRef: "root"},
	}
	var comps []cdx.Component
	var deps []cdx.Dependency
	datasets := map[string]cdx.Component{}
	var rootDeps []string
	for _, p := range files {
		rel, err := filepath.Rel(root, p)
		if err != nil || rel == "." {
			rel = filepath.Base(p)
		}
		rel = filepath.ToSlash(rel)
		sum, err := sha256File(p)
		if err != nil {
			return nil, err
		}
		c := cdx.Component{Type: cdx.ComponentTypeFile, Name: rel, BOMRef: "file:" + rel,
			Hashes: &[]cdx.Hash{{Algorithm: cdx.HashAlgoSHA256, Value: sum}}}
		var used []string
		switch strings.ToLower(filepath.Ext(p)) {
		case ".safetensors":
			if card, props, ds := nativeCard(p); card != nil {
				c.Type, c.ModelCard, c.Properties = cdx.ComponentTypeMachineLearningModel, card, props
				for _, d := range ds {
					datasets[d.BOMRef] = d
					used = append(used, d.BOMRef)
				}
			}
		case ".onnx":
			if om, err := onnx.Load(p); err == nil {
				c.Type = cdx.ComponentTypeMachineLearningModel
				c.ModelCard = &cdx.MLModelCard{ModelParameters: &cdx.MLModelParameters{
					Task:              "classification",
					ModelArchitecture: "onnx (" + om.Producer + ")",
					Inputs:            &[]cdx.MLInputOutputParameters{{Format: fmt.Sprintf("tensor %v (%s)", om.InputShape, om.Layout)}},
					Outputs:           &[]cdx.MLInputOutputParameters{{Format: fmt.Sprintf("%d scores", om.NumClasses)}},
				}}
				c.Properties = &[]cdx.Property{{Name: "bulwark:onnx:opset", Value: fmt.Sprint(om.Opset)}}
			}
		}
		comps = append(comps, c)
		rootDeps = append(rootDeps, c.BOMRef)
		if len(used) > 0 {
			deps = append(deps, cdx.Dependency{Ref: c.BOMRef, Dependencies: &used})
		}
	}
	var refs []string
	for r := range datasets {
		refs = append(refs, r)
	}
	sort.Strings(refs)
	for _, r := range refs {
		comps = append(comps, datasets[r])
	}
	b.Components = &comps
	deps = append([]cdx.Dependency{{Ref: "root", Dependencies: &rootDeps}}, deps...)
	b.Dependencies = &deps
	return b, nil
}

// nativeCard reads a bulwark model's metadata into a model card. A file
// that is not a bulwark model (or not valid) is listed as a plain file.
func nativeCard(path string) (*cdx.MLModelCard, *[]cdx.Property, []cdx.Component) {
	g, meta, _, err := model.LoadNative(path)
	if err != nil {
		return nil, nil, nil
	}
	pv := meta.Provenance
	var ds []cdx.Component
	var choices []cdx.MLDatasetChoice
	if pv.DatasetFingerprint != "" {
		ref := "data:" + pv.DatasetFingerprint
		d := cdx.Component{Type: cdx.ComponentTypeData, Name: pv.Dataset, BOMRef: ref,
			Data: &[]cdx.ComponentData{{Type: cdx.ComponentDataTypeDataset, Name: pv.Dataset,
				Description: fmt.Sprintf("split %q, %d training and %d validation examples", pv.Split, pv.TrainExamples, pv.ValidationExamples)}}}
		if alg, val, ok := strings.Cut(pv.DatasetFingerprint, ":"); ok && alg == "sha256" {
			d.Hashes = &[]cdx.Hash{{Algorithm: cdx.HashAlgoSHA256, Value: val}}
		}
		ds = append(ds, d)
		choices = append(choices, cdx.MLDatasetChoice{Ref: ref})
	}
	card := &cdx.MLModelCard{ModelParameters: &cdx.MLModelParameters{
		Approach:           &cdx.MLModelParametersApproach{Type: cdx.MLModelParametersApproachTypeSupervised},
		Task:               "classification",
		ArchitectureFamily: meta.Arch,
		ModelArchitecture:  fmt.Sprintf("%s, %d parameters, input %v", meta.Arch, g.NumParams(), meta.InputShape),
		Inputs:             &[]cdx.MLInputOutputParameters{{Format: fmt.Sprintf("tensor %v (%s, scale %g)", meta.InputShape, meta.Preprocess.Layout, meta.Preprocess.Scale)}},
		Outputs:            &[]cdx.MLInputOutputParameters{{Format: fmt.Sprintf("%d logits: %s", len(meta.Classes), strings.Join(meta.Classes, ", "))}},
	}}
	if len(choices) > 0 {
		card.ModelParameters.Datasets = &choices
	}
	if acc, ok := pv.Metrics["val_accuracy"]; ok {
		card.QuantitativeAnalysis = &cdx.MLQuantitativeAnalysis{PerformanceMetrics: &[]cdx.MLPerformanceMetric{
			{Type: "accuracy", Value: fmt.Sprintf("%.4f", acc), Slice: "validation split"}}}
	}
	props := []cdx.Property{
		{Name: "bulwark:format", Value: meta.Format},
		{Name: "bulwark:seed", Value: fmt.Sprint(pv.Seed)},
		{Name: "bulwark:epochs", Value: fmt.Sprint(pv.Epochs)},
		{Name: "bulwark:optimizer", Value: pv.Optimizer.Name},
		{Name: "bulwark:learning_rate", Value: fmt.Sprint(pv.LearningRate)},
		{Name: "bulwark:engine", Value: pv.Engine},
		{Name: "bulwark:version", Value: pv.BulwarkVersion},
		{Name: "bulwark:created", Value: pv.Created},
	}
	return card, &props, ds
}

func sha256File(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("%s: %w", p, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Write encodes b as CycloneDX 1.6 JSON.
func Write(w io.Writer, b *cdx.BOM) error {
	enc := cdx.NewBOMEncoder(w, cdx.BOMFileFormatJSON)
	enc.SetPretty(true)
	return enc.EncodeVersion(b, SpecVersion)
}
