// A short two-tone beep for the proctor's alerts (Web Audio: no sound file to fetch). Browsers
// let a page make sound only after the user interacted with it; turning the sound on is that.
let context = null;

export function beep() {
  context ??= new AudioContext();
  if (context.state === "suspended") context.resume();
  const gain = context.createGain();
  gain.connect(context.destination);
  const start = context.currentTime;
  gain.gain.setValueAtTime(0.0001, start);
  gain.gain.exponentialRampToValueAtTime(0.3, start + 0.02);
  gain.gain.exponentialRampToValueAtTime(0.0001, start + 0.45);
  [880, 660].forEach((frequency, i) => {
    const tone = context.createOscillator();
    tone.frequency.value = frequency;
    tone.connect(gain);
    tone.start(start + i * 0.2);
    tone.stop(start + i * 0.2 + 0.2);
  });
  window.proctorBeeps = (window.proctorBeeps || 0) + 1;  // how many played (the tests read it)
}
