"""Identity resolution: normalize identifiers, score candidate pairs, resolve people in bulk."""
