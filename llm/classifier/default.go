package classifier

import (
	_ "embed"
	"sync"
)

// defaultModel is trained by `make llm-model` (bulwark llm train on the
// training part of the labelled data in shared/data/llm; the held-out part
// never reaches it). The data's licences are listed in
// llm/classifier/DEFAULT_MODEL.md.
//
//go:embed default.model
var defaultModel []byte

// Default returns the classifier with the embedded model.
var Default = sync.OnceValues(func() (*Classifier, error) {
	m, err := Unmarshal(defaultModel, "embedded default model")
	if err != nil {
		return nil, err
	}
	return New(m), nil
})
