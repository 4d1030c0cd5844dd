// Audible cue for life-safety alarms: a WebAudio beep, no sound file to fetch.

let context: AudioContext | null = null;

/** Call from a user gesture (the login click): browsers only start audio after one. */
export function unlockAudio(): void {
  try {
    context ??= new AudioContext();
    void context.resume();
  } catch {
    context = null;
  }
}

/** Three short high beeps: the P1 cue operators learn to recognise. */
export function alarmBeep(): void {
  if (!context) return;
  const start = context.currentTime + 0.01;
  for (let i = 0; i < 3; i++) {
    const oscillator = context.createOscillator();
    const gain = context.createGain();
    oscillator.type = 'square';
    oscillator.frequency.value = 1046; // C6
    const t = start + i * 0.22;
    gain.gain.setValueAtTime(0.0001, t);
    gain.gain.exponentialRampToValueAtTime(0.25, t + 0.01);
    gain.gain.exponentialRampToValueAtTime(0.0001, t + 0.15);
    oscillator.connect(gain).connect(context.destination);
    oscillator.start(t);
    oscillator.stop(t + 0.16);
  }
  beeps += 1;
  document.body.dataset.beeps = String(beeps);
}

let beeps = 0;
