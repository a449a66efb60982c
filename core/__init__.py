"""The ground every Customer Brain package stands on. Imports none of our other packages."""
