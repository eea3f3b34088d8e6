//! English sentence splitting (Punkt-class), used to insert `<AC>` anchors after sentences.
