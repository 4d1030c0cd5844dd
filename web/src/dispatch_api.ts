// The dispatch REST (safecity.dispatch.api), behind small functions: pages call these, never paths.

import { api } from './session';

export const INCIDENTS = '/api/v1/incidents';

export interface Incident {
  id: string;
  type: string;
  priority: number;
  status: string;
  lat: number;
  lon: number;
  address: string;
  district: string | null;
  source: string;
  source_ref: string | null;
  narrative: string;
  created_at: string;
  created_by: string;
}

export interface Assignment {
  id: number;
  incident_id: string;
  unit_id: string;
  status: string;
  active: boolean;
  assigned_at: string;
  assigned_by: string;
  acknowledged_at: string | null;
  eta_s: number | null;
}

export interface IncidentDetail extends Incident {
  assignments: Assignment[];
  timeline: Array<{ at: string; actor: string; kind: string; unit_id: string | null; detail: string }>;
}

export interface Unit {
  id: string;
  callsign: string;
  kind: string;
  status: string;
  on_shift: boolean;
  current_incident: string | null;
  last_lat: number | null;
  last_lon: number | null;
  last_position_at: string | null;
  stale: boolean;
}

export interface Recommendation {
  rank: number;
  unit_id: string;
  kind: string;
  status: string;
  eta_s: number;
  stale: boolean;
  missing_capabilities: string[];
  route: GeoJSON.Feature | null;
}

export const incidents = (): Promise<Incident[]> => api<Incident[]>(INCIDENTS);
export const incident = (id: string): Promise<IncidentDetail> => api<IncidentDetail>(`${INCIDENTS}/${encodeURIComponent(id)}`);
export const units = (): Promise<Unit[]> => api<Unit[]>('/api/v1/units');
export const recommendations = (id: string): Promise<Recommendation[]> =>
  api<Recommendation[]>(`${INCIDENTS}/${encodeURIComponent(id)}/recommendations?k=5`);
export const assign = (id: string, unitId: string, etaS: number | null): Promise<Assignment> =>
  api<Assignment>(`${INCIDENTS}/${encodeURIComponent(id)}/assignments`, 'POST', { unit_id: unitId, eta_s: etaS });

// the crew's own calls (tablet)
export const unit = (unitId: string): Promise<Unit> => api<Unit>(`/api/v1/units/${unitId}`);
export const assignment = (unitId: string): Promise<Assignment | null> => api<Assignment | null>(`/api/v1/units/${unitId}/assignment`);
export const reportStatus = (unitId: string, status: string): Promise<Unit> => api<Unit>(`/api/v1/units/${unitId}/status`, 'POST', { status });
export const acknowledge = (unitId: string): Promise<Assignment> => api<Assignment>(`/api/v1/units/${unitId}/acknowledge`, 'POST', {});
export const reportPosition = (unitId: string, fix: Record<string, unknown>): Promise<unknown> =>
  api(`/api/v1/units/${unitId}/positions`, 'POST', fix);

/** Incident notes from the crew: not in every platform version (see `apiPaths`). */
export const unitRoute = (unitId: string): Promise<GeoJSON.Feature | null> =>
  api<GeoJSON.Feature | null>(`/api/v1/units/${encodeURIComponent(unitId)}/route`);
export const NOTES_PATH = '/api/v1/incidents/{incident_id}/notes';
export const addNote = (incidentId: string, note: string): Promise<unknown> =>
  api(`${INCIDENTS}/${encodeURIComponent(incidentId)}/notes`, 'POST', { note });
