"""Computer-aided dispatch: incidents, rapid-response units, tracking, recommendation, assignment."""
