"""One module per Firestore collection."""
